import factory

from agents.models import AgentRun, RunKind
from projects.tests.factories import ProjectFactory


class AgentRunFactory(factory.django.DjangoModelFactory):
    """A question asked by the project's creator, queued; pass `status=`, `answer=`... for a finished one."""

    class Meta:
        model = AgentRun

    project = factory.SubFactory(ProjectFactory)
    created_by = factory.SelfAttribute("project.created_by")
    kind = RunKind.ASK
    question = factory.Sequence(lambda n: f"Question {n}?")
