"""The REST API, version 1: every app's viewsets on one router."""

from django.urls import include, path, re_path
from rest_framework.routers import DefaultRouter

from accounts import api as accounts_api
from agents import api as agents_api
from documents import api as documents_api
from projects import api as projects_api


class OptionalSlashRouter(DefaultRouter):
    """Accept `/users/me` and `/users/me/` alike: API clients differ. `/api/v1/` lists the
    collections (DRF's root view); no `.json` suffix routes."""

    include_format_suffixes = False

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("users", accounts_api.UserViewSet, basename="user")
router.register("keys", accounts_api.KeyViewSet, basename="key")
router.register("projects", projects_api.ProjectViewSet, basename="project")
router.register(r"projects/(?P<project_pk>[^/.]+)/members", projects_api.MemberViewSet, basename="member")
router.register(
    r"projects/(?P<project_pk>[^/.]+)/invitations",
    projects_api.ProjectInvitationViewSet,
    basename="project-invitation",
)
router.register(
    r"projects/(?P<project_pk>[^/.]+)/audit", projects_api.ProjectAuditViewSet, basename="project-audit"
)
router.register("invitations", projects_api.MyInvitationViewSet, basename="invitation")
router.register(
    r"projects/(?P<project_pk>[^/.]+)/webhooks", projects_api.WebhookViewSet, basename="project-webhook"
)
router.register(
    r"projects/(?P<project_pk>[^/.]+)/webhooks/(?P<webhook_pk>[^/.]+)/deliveries",
    projects_api.WebhookDeliveryViewSet,
    basename="project-webhook-delivery",
)
router.register("documents", documents_api.DocumentViewSet, basename="document")
router.register(
    r"projects/(?P<project_pk>[^/.]+)/imports", documents_api.ImportViewSet, basename="project-import"
)
router.register("runs", agents_api.RunViewSet, basename="run")
router.register(
    r"projects/(?P<project_pk>[^/.]+)/feedback",
    agents_api.ProjectFeedbackViewSet,
    basename="project-feedback",
)
router.register("threads", agents_api.ThreadViewSet, basename="thread")

urlpatterns = [
    path("auth/", include(accounts_api.auth_urls)),
    re_path(
        r"^projects/(?P<project_pk>[^/.]+)/search/?$",
        documents_api.SearchView.as_view(),
        name="project-search",
    ),
    re_path(r"^search/?$", documents_api.AllSearchView.as_view(), name="search-all"),
    path("", include(router.urls)),
]
