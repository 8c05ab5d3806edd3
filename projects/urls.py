"""HTML pages of the projects app (the project page itself is the workspace's: workspace/urls.py)."""

from django.urls import path

from projects import views

app_name = "projects"
urlpatterns = [
    path("", views.project_list, name="list"),
    path("projects/new/", views.project_create, name="create"),
    path("projects/<uuid:pk>/edit/", views.project_edit, name="edit"),
    path("projects/<uuid:pk>/archive/", views.project_archive, name="archive"),
    path("projects/<uuid:pk>/delete/", views.project_delete, name="delete"),
    path("projects/<uuid:pk>/members/", views.members, name="members"),
    path(
        "projects/<uuid:pk>/members/<int:member_id>/role/",
        views.member_role,
        name="member_role",
    ),
    path(
        "projects/<uuid:pk>/members/<int:member_id>/remove/",
        views.member_remove,
        name="member_remove",
    ),
    path(
        "projects/<uuid:pk>/invitations/<uuid:invitation_id>/revoke/",
        views.invitation_revoke,
        name="invitation_revoke",
    ),
    path("projects/<uuid:pk>/webhooks/", views.webhooks_page, name="webhooks"),
    path("projects/<uuid:pk>/webhooks/<uuid:webhook_id>/", views.webhook_detail, name="webhook"),
    path(
        "projects/<uuid:pk>/webhooks/<uuid:webhook_id>/toggle/", views.webhook_toggle, name="webhook_toggle"
    ),
    path(
        "projects/<uuid:pk>/webhooks/<uuid:webhook_id>/rotate/", views.webhook_rotate, name="webhook_rotate"
    ),
    path(
        "projects/<uuid:pk>/webhooks/<uuid:webhook_id>/delete/", views.webhook_delete, name="webhook_delete"
    ),
    path("projects/<uuid:pk>/webhooks/<uuid:webhook_id>/test/", views.webhook_test, name="webhook_test"),
    path(
        "projects/<uuid:pk>/webhooks/<uuid:webhook_id>/deliveries/<uuid:delivery_id>/resend/",
        views.webhook_resend,
        name="webhook_resend",
    ),
    path("invitations/", views.my_invitations, name="invitations"),
    path("invitations/<uuid:invitation_id>/accept/", views.invitation_accept, name="invitation_accept"),
    path("invitations/<uuid:invitation_id>/decline/", views.invitation_decline, name="invitation_decline"),
]
