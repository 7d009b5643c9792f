"""The configured push providers, built once per process from the settings."""

from django.conf import settings

from imserver.capabilities import push_providers
from push.apns import ApnsClient
from push.fcm import FcmClient


def enabled() -> dict[str, bool]:
    """Which providers the server has credentials for."""
    return push_providers()


def clients() -> dict[str, FcmClient | ApnsClient]:
    """A client for each configured provider. A sender keeps them for its lifetime (each holds an
    HTTP/2 connection bound to the sender's event loop) and closes them with `aclose()`."""
    built = {}
    if settings.FCM_CREDENTIALS_FILE:
        built["fcm"] = FcmClient(
            credentials_file=settings.FCM_CREDENTIALS_FILE,
            project_id=settings.FCM_PROJECT_ID,
            endpoint=settings.FCM_ENDPOINT,
            timeout=settings.PUSH_TIMEOUT_SECONDS,
        )
    if settings.APNS_KEY_FILE:
        built["apns"] = ApnsClient(
            key_file=settings.APNS_KEY_FILE,
            key_id=settings.APNS_KEY_ID,
            team_id=settings.APNS_TEAM_ID,
            topic=settings.APNS_TOPIC,
            endpoint=settings.APNS_ENDPOINT,
            ca_file=settings.APNS_CA_FILE,
            timeout=settings.PUSH_TIMEOUT_SECONDS,
        )
    return built
