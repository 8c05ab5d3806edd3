from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "projects"

    def ready(self) -> None:
        from accounts import keys
        from projects import signals  # noqa: F401  (connects the receivers)
        from projects.access import project_titles_of

        keys.register_project_directory(project_titles_of)  # the projects a key may be limited to
