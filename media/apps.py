from django.apps import AppConfig


class MediaConfig(AppConfig):
    name = "media"

    def ready(self):
        from media import signals  # noqa: F401  (connects the receivers)
