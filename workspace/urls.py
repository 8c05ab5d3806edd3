"""URLs of the workspace pages, under the namespaces their pages have always had:
`projects:` for the project page and its parts (joined to the projects app's own pages, so the
namespace stays one), `documents:` for a document, `agents:` for runs."""

from django.urls import include, path

from projects import urls as project_pages
from workspace.views import audit, documents, feedback, projects, runs, viewer

project_patterns = [
    path("projects/<uuid:pk>/", projects.project_detail, name="detail"),
    path("projects/<uuid:pk>/documents/", projects.document_upload, name="upload"),
    path("projects/<uuid:pk>/search/", documents.search, name="search"),
    path("projects/<uuid:pk>/documents.json", documents.project_documents_status, name="documents_status"),
    path("projects/<uuid:pk>/imports/", documents.project_imports, name="imports"),
    path("projects/<uuid:pk>/feedback/", feedback.project_feedback, name="feedback"),
    path("projects/<uuid:pk>/audit/", audit.project_audit, name="audit"),
]

document_patterns = [
    path("<uuid:pk>/", documents.detail, name="detail"),
    path("<uuid:pk>/status.json", documents.status, name="status"),
    path("<uuid:pk>/view/", viewer.view, name="view"),
    path("<uuid:pk>/file/", viewer.file, name="file"),
    path("<uuid:pk>/reindex/", documents.reindex, name="reindex"),
    path("<uuid:pk>/rename/", documents.rename, name="rename"),
    path("<uuid:pk>/delete/", documents.delete, name="delete"),
]

run_patterns = [
    path("new/", runs.create, name="create"),
    path("<uuid:pk>/", runs.detail, name="detail"),
    path("<uuid:pk>/status.json", runs.status, name="status"),
    path("<uuid:pk>/events", runs.events, name="events"),
    path("<uuid:pk>/turn/", runs.turn, name="turn"),
    path("<uuid:pk>/feedback/", feedback.rate, name="feedback"),
    path("<uuid:pk>/feedback/remove/", feedback.unrate, name="feedback_remove"),
    path("threads/<uuid:pk>/", runs.thread, name="thread"),
    path("threads/<uuid:pk>/rename/", runs.thread_rename, name="thread_rename"),
    path("threads/<uuid:pk>/share/", runs.thread_share, name="thread_share"),
    path("threads/<uuid:pk>/delete/", runs.thread_delete, name="thread_delete"),
]

urlpatterns = [
    path("documents/", include((document_patterns, "documents"))),
    path("runs/", include((run_patterns, "agents"))),
    path("search/", documents.search_all, name="search"),
    path("", include((project_pages.urlpatterns + project_patterns, project_pages.app_name))),
]
