"""Schemathesis fuzzes every operation of /api/schema/ through the WSGI app, authenticated with a JWT.

Every response must be a non-5xx that the schema documents: its status code,
content type, headers and body. Half of the generated ids, project filters and
body references are swapped for real ones, so the calls also reach the code
behind the 404s, and some bodies carry a lone surrogate or a NUL in one of their strings
(a 400, never a 500). The number of examples per operation is bounded (SCHEMATHESIS_EXAMPLES).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from rest_framework_simplejwt.tokens import RefreshToken
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.security.conftest import World, build_world

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

_world: dict[str, World] = {}


def _real_ids(path: str) -> dict[str, str]:
    world = _world["current"]
    if path.startswith("/api/v1/projects/{project_pk}/members/"):
        return {"project_pk": str(world.project.pk), "id": str(world.memberships["bystander"].pk)}
    if path.startswith("/api/v1/projects/"):
        return {"project_pk": str(world.project.pk), "id": str(world.project.pk)}
    if path.startswith("/api/v1/documents/"):
        return {"id": str(world.document.pk)}
    if path.startswith("/api/v1/runs/"):
        return {"id": str(world.run.pk)}
    if path.startswith("/api/v1/users/"):
        return {"id": str(world.users["owner"].pk)}
    return {}


def _real_refs() -> dict[str, str]:
    world = _world["current"]
    return {"project": str(world.project.pk), "document": str(world.document.pk), "parent": str(world.run.pk)}


def _with_real_refs(values: Any, real: dict[str, str]) -> st.SearchStrategy[Any]:
    if not isinstance(values, dict) or not set(values) & set(real):
        return st.just(values)
    swapped = {**values, **{key: real[key] for key in values if key in real}}
    return st.sampled_from([values, swapped])


from config.wsgi import application  # noqa: E402 - pytest-django has configured Django by now

# Loaded once at collection (the request touches no database); one test per operation.
schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> st.SearchStrategy[Any]:
    if not path_parameters:
        return st.just(path_parameters)
    real = _real_ids(context.operation.path)
    return _with_real_refs(path_parameters, {k: v for k, v in real.items() if k in path_parameters})


@schema.hook
def flatmap_query(context: Any, query: dict[str, Any]) -> st.SearchStrategy[Any]:
    return _with_real_refs(query, _real_refs())


# Strings no store can hold: a lone surrogate and a NUL. Bodies carry a private-use mark
# where the surrogate goes (valid text, so a form or multipart body can still be encoded);
# the JSON serializer below writes it as the escape `\\udfff`, valid JSON that is not UTF-8.
SURROGATE_MARK = "\ue0ff"
BAD_TEXT = (SURROGATE_MARK, "\x00")


def _with_bad_text(body: Any) -> st.SearchStrategy[Any]:
    """The body as it is, or with one of its strings spoiled by a lone surrogate or a NUL."""
    fields = [key for key, value in body.items() if isinstance(value, str)] if isinstance(body, dict) else []
    if not fields:
        return st.just(body)
    spoiled = st.tuples(st.sampled_from(fields), st.sampled_from(BAD_TEXT)).map(
        lambda pick: {**body, pick[0]: body[pick[0]] + pick[1]}
    )
    return st.one_of(st.just(body), spoiled)


@schema.hook
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
    return _with_real_refs(body, _real_refs()).flatmap(_with_bad_text)


def _surrogates_for_marks(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace(SURROGATE_MARK, "\udfff")
    if isinstance(value, dict):
        return {_surrogates_for_marks(k): _surrogates_for_marks(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_surrogates_for_marks(item) for item in value]
    return value


@schemathesis.serializer("application/json")
def json_with_lone_surrogates(context: Any, value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    # ensure_ascii (the default) writes a lone surrogate as its \\u escape.
    return json.dumps(_surrogates_for_marks(value) if value is not None else None).encode()


@pytest.fixture
def fuzz_world(db: Any, settings: Any) -> Iterator[World]:
    """A fresh world per operation; the owner is staff, and the limits are out of the way."""
    # As Django's test client does: the WSGI handler must not close the test's connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    settings.RATE_LIMITS = {
        name: ({tier: 10**9 for tier in value} if isinstance(value, dict) else 10**9)
        for name, value in settings.RATE_LIMITS.items()
    }
    world = build_world()
    world.users["owner"].is_staff = True
    world.users["owner"].save(update_fields=["is_staff"])
    _world["current"] = world
    yield world
    _world.pop("current", None)
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_answers_every_generated_request_as_its_schema_says(
    case: schemathesis.Case, fuzz_world: World
) -> None:
    token = str(RefreshToken.for_user(fuzz_world.users["owner"]).access_token)
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
