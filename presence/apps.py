from django.apps import AppConfig


class PresenceConfig(AppConfig):
    name = "presence"

    def ready(self):
        from presence import registry  # noqa: F401  (registers its periodic jobs)
