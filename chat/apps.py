from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"

    def ready(self):
        from chat import jobs  # noqa: F401  (registers the delivered flush with realtime.background)
