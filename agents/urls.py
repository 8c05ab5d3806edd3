"""HTML pages of the agents app."""

from django.urls import path

from agents import views

app_name = "agents"
urlpatterns = [
    path("new/", views.create, name="create"),
    path("<uuid:pk>/", views.detail, name="detail"),
    path("<uuid:pk>/status.json", views.status, name="status"),
    path("<uuid:pk>/events", views.events, name="events"),
    path("<uuid:pk>/turn/", views.turn, name="turn"),
    path("threads/<uuid:pk>/", views.thread, name="thread"),
]
