"""The staff admin for agent runs: read-only results, re-running failed runs."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.messages import WARNING, get_messages
from django.urls import reverse

from agents.models import AgentRun, RunKind, RunStatus

pytestmark = pytest.mark.django_db


def _run(project: Any, status: str, **fields: Any) -> AgentRun:
    fields.setdefault("question", "What is in the corpus?")
    return AgentRun.objects.create(project=project, kind=RunKind.ASK, status=status, **fields)


def test_run_pages_render_for_a_superuser(admin_client: Any, project: Any) -> None:
    run = _run(project, RunStatus.SUCCEEDED, answer="Coral.", provider="offline", latency_ms=12)

    changelist = admin_client.get(
        reverse("admin:agents_agentrun_changelist"),
        {
            "kind__exact": "ask",
            "status__exact": "succeeded",
            "degraded__exact": "0",
            "q": "corpus",
        },
    )
    change = admin_client.get(reverse("admin:agents_agentrun_change", args=[run.pk]))

    assert changelist.status_code == 200
    assert str(run.pk).encode() in changelist.content
    assert change.status_code == 200
    assert b"Coral." in change.content
    assert b'name="answer"' not in change.content  # results are read-only


def test_runs_cannot_be_added_in_the_admin(admin_client: Any) -> None:
    assert admin_client.get(reverse("admin:agents_agentrun_add")).status_code == 403


def test_rerun_action_requeues_only_failed_runs(
    admin_client: Any, project: Any, django_capture_on_commit_callbacks: Any
) -> None:
    failed = _run(project, RunStatus.FAILED, error="provider timed out")
    succeeded = _run(project, RunStatus.SUCCEEDED, answer="Done.")

    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(
            reverse("admin:agents_agentrun_changelist"),
            {
                "action": "rerun_failed",
                "_selected_action": [str(failed.pk), str(succeeded.pk)],
            },
        )

    assert response.status_code == 302
    failed.refresh_from_db()
    succeeded.refresh_from_db()
    assert failed.status == RunStatus.QUEUED
    assert failed.error == ""
    assert succeeded.status == RunStatus.SUCCEEDED
    assert len(callbacks) == 1  # one enqueue, for the failed run only
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    assert messages == ["Re-queued 1 failed run. Skipped 1 that had not failed."]


def test_run_changelist_queries_do_not_grow_with_runs(admin_client: Any, project: Any) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts.tests.factories import UserFactory
    from conftest import make_project

    url = reverse("admin:agents_agentrun_changelist")
    _run(project, RunStatus.SUCCEEDED)
    admin_client.get(url)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    for i in range(10):
        _run(make_project(UserFactory(), f"Other {i}"), RunStatus.FAILED)
    with CaptureQueriesContext(connection) as many:
        assert admin_client.get(url).status_code == 200
    assert len(many.captured_queries) == len(few.captured_queries)


def test_run_changelist_shows_kind_question_and_who_asked(admin_client: Any, project: Any, user: Any) -> None:
    long_question = "Which reefs " + "bleached in the warm summer " * 10 + "of 2016?"
    _run(project, RunStatus.SUCCEEDED, created_by=user, question=long_question)

    page = admin_client.get(reverse("admin:agents_agentrun_changelist"))
    by_email = admin_client.get(reverse("admin:agents_agentrun_changelist"), {"q": "owner@example"})
    other = admin_client.get(reverse("admin:agents_agentrun_changelist"), {"q": "nobody@example"})

    html = page.content.decode()
    for column in ("column-kind", "column-question_excerpt", "column-user_email", "column-project"):
        assert column in html
    assert "owner@example.com" in html
    assert "Which reefs bleached in the warm summer" in html
    assert long_question not in html  # truncated
    assert "Research" in html  # the project
    assert "owner@example.com" in by_email.content.decode()
    assert "owner@example.com" not in other.content.decode()


def test_rerun_action_leaves_runs_that_have_not_failed_alone(
    admin_client: Any, project: Any, django_capture_on_commit_callbacks: Any
) -> None:
    queued = _run(project, RunStatus.QUEUED)
    running = _run(project, RunStatus.GENERATING)
    succeeded = _run(project, RunStatus.SUCCEEDED, answer="Done.")

    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(
            reverse("admin:agents_agentrun_changelist"),
            {"action": "rerun_failed", "_selected_action": [str(r.pk) for r in (queued, running, succeeded)]},
        )

    assert response.status_code == 302
    assert callbacks == []
    for run, status in (
        (queued, RunStatus.QUEUED),
        (running, RunStatus.GENERATING),
        (succeeded, RunStatus.SUCCEEDED),
    ):
        before = run.updated_at
        run.refresh_from_db()
        assert (run.status, run.updated_at) == (status, before)
    messages = [(m.level, str(m)) for m in get_messages(response.wsgi_request)]
    assert messages == [(WARNING, "Re-queued 0 failed runs. Skipped 3 that had not failed.")]


def test_retry_service_refuses_a_run_that_has_not_failed(project: Any) -> None:
    from django.core.exceptions import ValidationError

    from agents import services

    succeeded = _run(project, RunStatus.SUCCEEDED, answer="Done.")

    with pytest.raises(ValidationError, match="Only a failed run"):
        services.run_retry(run=succeeded)
    succeeded.refresh_from_db()
    assert succeeded.status == RunStatus.SUCCEEDED
    assert succeeded.answer == "Done."


def test_retry_service_queues_a_failed_run_once_even_when_asked_twice(
    project: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from django.core.exceptions import ValidationError

    from agents import services

    failed = _run(project, RunStatus.FAILED, error="provider timed out")
    stale_copy = AgentRun.objects.get(pk=failed.pk)  # a second admin tab, loaded before the first click

    with django_capture_on_commit_callbacks() as callbacks:
        services.run_retry(run=failed)
        with pytest.raises(ValidationError):
            services.run_retry(run=stale_copy)

    assert len(callbacks) == 1
    failed.refresh_from_db()
    assert (failed.status, failed.error) == (RunStatus.QUEUED, "")
