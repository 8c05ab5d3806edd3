"""HTML pages of the documents app (search lives under its project: projects.urls)."""

from django.urls import path

from documents import views

app_name = "documents"
urlpatterns = [
    path("<uuid:pk>/", views.detail, name="detail"),
    path("<uuid:pk>/status.json", views.status, name="status"),
    path("<uuid:pk>/reindex/", views.reindex, name="reindex"),
    path("<uuid:pk>/delete/", views.delete, name="delete"),
]
