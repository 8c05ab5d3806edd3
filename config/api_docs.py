"""ReDoc served whole from this server: its bundle draws a logo from Redocly's CDN, which the
CSP blocks (and which an offline machine cannot reach), so the bundle is served with that one
address pointing at a logo in our static files."""

from __future__ import annotations

import functools

from django.contrib.staticfiles import finders
from django.http import HttpRequest, HttpResponse
from django.templatetags.static import static
from django.urls import reverse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET
from drf_spectacular.views import SpectacularRedocView

REDOC_BUNDLE = "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"
REDOC_CDN_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
LOCAL_LOGO = "docs/redoc-logo.svg"


@functools.cache
def _bundle(logo_url: str) -> bytes:
    path = finders.find(REDOC_BUNDLE)
    if not path:
        raise FileNotFoundError(REDOC_BUNDLE)
    with open(path, "rb") as handle:
        return handle.read().replace(REDOC_CDN_LOGO.encode(), logo_url.encode())


@require_GET
@cache_control(public=True, max_age=24 * 3600)
def redoc_bundle(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_bundle(static(LOCAL_LOGO)), content_type="application/javascript; charset=utf-8")


class RedocView(SpectacularRedocView):
    """drf-spectacular's ReDoc page, loading the bundle above."""

    @staticmethod
    def _redoc_standalone() -> str:
        return reverse("redoc-bundle")
