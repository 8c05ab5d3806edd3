"""Root URLs: pages, admin, the versioned API, its docs, and health probes."""

from csp.decorators import csp_update
from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.http import require_GET
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from agents import breaker
from config import api_docs, health
from core import metrics
from documents import ingest

# The API docs pages render styles and workers at run time; they show no user content.
docs_csp = csp_update({"style-src": ["'unsafe-inline'"], "worker-src": ["blob:"], "img-src": ["data:"]})


@require_GET
def api_index(request: HttpRequest) -> JsonResponse:
    """/api/ says where the API and its documentation are (it was a 404)."""
    base = request.build_absolute_uri("/api/")
    return JsonResponse(
        {
            "v1": base + "v1/",
            "docs": base + "docs/",
            "redoc": base + "redoc/",
            "schema": base + "schema/",
        }
    )


urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("api/", api_index, name="api-index"),
    path("readyz", health.readyz, name="readyz"),
    # Prometheus, for a scraper with DOCENT_METRICS_TOKEN or on DOCENT_METRICS_NETWORKS (else 404);
    # the gauges read at scrape time come from the apps that own their data.
    path(
        "metrics",
        metrics.endpoint(
            {metrics.INGEST_QUEUE: ingest.queue_depth, metrics.BREAKER_STATE: breaker.provider_states}
        ),
        name="metrics",
    ),
    path("admin/", admin.site.urls),
    path("api/v1/", include("config.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", docs_csp(SpectacularSwaggerSplitView.as_view(url_name="schema")), name="swagger-ui"),
    path("api/redoc/", docs_csp(api_docs.RedocView.as_view(url_name="schema")), name="redoc"),
    path("api/redoc/redoc.standalone.js", api_docs.redoc_bundle, name="redoc-bundle"),
    path("accounts/", include("accounts.urls")),
    # Single sign-on (accounts/oidc.py): /oidc/authenticate/ and /oidc/callback/, 404 until configured.
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("", include("workspace.urls")),
]

# JSON for /api/ paths, the site's pages elsewhere.
handler400 = "core.api_errors.bad_request"
handler403 = "core.api_errors.permission_denied"
handler404 = "core.api_errors.not_found"
handler500 = "core.api_errors.server_error"
