"""OpenAPI: Docent's JWT authentication is documented as simplejwt's (the same bearer scheme)."""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme


class CachedJWTScheme(SimpleJWTScheme):
    target_class = "accounts.authentication.CachedJWTAuthentication"
