from django.apps import AppConfig


class PushConfig(AppConfig):
    name = "push"
    verbose_name = "Push notifications"

    def ready(self):
        from push import jobs, providers, sender
        from realtime import events

        # While no provider is configured nothing is queued: a push could never leave.
        events.outbox_register(sender.PUSHED_TYPES, enabled=lambda: any(providers.enabled().values()))
        jobs.register()
