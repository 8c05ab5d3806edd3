"""OpenAPI: Docent's JWT authentication is documented as simplejwt's (the same bearer scheme);
personal API keys as a bearer scheme of their own."""

from typing import Any

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class CachedJWTScheme(SimpleJWTScheme):
    target_class = "accounts.authentication.CachedJWTAuthentication"


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "apiKey"
    priority = 1

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "dk_<prefix>_<secret>",
            "description": (
                "A personal API key from your account's API keys page or POST /api/v1/keys/, sent as "
                "`Authorization: Bearer dk_...`. It acts as you, within its scopes (read, search, ask, "
                "write, admin:projects) and the projects it is limited to; a missing scope is a 403 "
                'with `"code": "scope_missing"`.'
            ),
        }
