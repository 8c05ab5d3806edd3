"""The error responses of the API, added to every operation of the OpenAPI schema.

drf-spectacular documents the successful responses; clients (and the
schemathesis fuzzer in tests/security) also need the errors each operation can
give and their shapes: a field-keyed object for validation errors, `{"detail"}`
for the others, and `{"detail", "limit"}` with Retry-After for rate limits.
"""

from __future__ import annotations

from typing import Any

METHODS = {"get", "post", "put", "patch", "delete"}
# Request fields and query parameters that name an object another project may own (-> 404).
REFERENCES = {"project", "document", "parent"}
# Public endpoints that still answer 401 for wrong credentials or a bad token.
CREDENTIAL_PATHS = ("/api/v1/auth/token", "/api/v1/auth/logout")
# Operations that answer 409 when they clash with what exists, or with a delete happening at once.
CONFLICTS = {
    ("/api/v1/documents/", "post"): "The project already has a document with this external id.",
    ("/api/v1/runs/", "post"): "What the run is about was deleted meanwhile.",
    ("/api/v1/documents/{id}/reindex/", "post"): "The document is already queued to be indexed.",
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    },
    "ValidationError": {
        "type": "object",
        "description": "Field name (or `detail`, `non_field_errors`) to the messages about it.",
        "additionalProperties": {},
    },
    "RateLimited": {
        "type": "object",
        "properties": {
            "detail": {"type": "string"},
            "limit": {"type": "string", "description": "Which limit was reached, e.g. `api` or `uploads`."},
        },
        "required": ["detail", "limit"],
    },
}


def _response(description: str, schema: str, **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        **extra,
    }


def _body_fields(operation: dict[str, Any], schemas: dict[str, Any]) -> set[str]:
    fields: set[str] = set()
    for media in operation.get("requestBody", {}).get("content", {}).values():
        ref = media.get("schema", {}).get("$ref", "")
        fields |= set(schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {}))
    return fields


def document_errors(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"])."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(SCHEMAS)
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            responses = operation.setdefault("responses", {})
            parameters = operation.get("parameters", [])
            query = {p["name"] for p in parameters if p.get("in") == "query"}
            has_path_params = any(p.get("in") == "path" for p in parameters)
            has_body = "requestBody" in operation
            authenticates = any(scheme for scheme in operation.get("security", []))
            checks_credentials = authenticates or path.startswith(CREDENTIAL_PATHS)
            errors = {
                "429": _response(
                    "A rate limit was reached.",
                    "RateLimited",
                    headers={
                        "Retry-After": {
                            "schema": {"type": "integer"},
                            "description": "Seconds until the limit resets.",
                        }
                    },
                )
            }
            if has_body or query:
                errors["400"] = _response(
                    "The request is invalid; the fields at fault are named.", "ValidationError"
                )
            if has_body:
                errors["413"] = _response("The request body is larger than the upload limit.", "Error")
                errors["415"] = _response(
                    "The request body's media type or encoding cannot be read.", "Error"
                )
            if checks_credentials:
                errors["401"] = _response("Not signed in, or the credentials or token are wrong.", "Error")
            if authenticates:
                errors["403"] = _response("Signed in, but not allowed to do this.", "Error")
            if has_path_params or "page" in query or (query | _body_fields(operation, schemas)) & REFERENCES:
                errors["404"] = _response("Not found, or not shared with you.", "Error")
            if (path, method) in CONFLICTS:
                errors["409"] = _response(CONFLICTS[(path, method)], "Error")
            for status, response in errors.items():
                responses.setdefault(status, response)
    return result
