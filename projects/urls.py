"""HTML pages of the projects app, and the project-scoped pages of documents."""

from django.urls import path

from documents import views as document_views
from projects import views

app_name = "projects"
urlpatterns = [
    path("", views.project_list, name="list"),
    path("projects/new/", views.project_create, name="create"),
    path("projects/<uuid:pk>/", views.project_detail, name="detail"),
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
    path("invitations/", views.my_invitations, name="invitations"),
    path("invitations/<uuid:invitation_id>/accept/", views.invitation_accept, name="invitation_accept"),
    path("invitations/<uuid:invitation_id>/decline/", views.invitation_decline, name="invitation_decline"),
    path("projects/<uuid:pk>/documents/", views.document_upload, name="upload"),
    # Documents owns search and document state; they are scoped by project.
    path("projects/<uuid:pk>/search/", document_views.search, name="search"),
    path(
        "projects/<uuid:pk>/documents.json",
        document_views.project_documents_status,
        name="documents_status",
    ),
    path("projects/<uuid:pk>/imports/", document_views.project_imports, name="imports"),
]
