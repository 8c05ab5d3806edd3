from django.apps import AppConfig


class WorkspaceConfig(AppConfig):
    """The pages that combine apps: a project's documents, search, questions and runs.

    It sits on top: it imports agents, documents and projects, and none of them imports it.
    """

    default_auto_field = "django.db.models.BigAutoField"
    name = "workspace"
