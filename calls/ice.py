"""ICE servers for clients: STUN as configured, TURN with time-limited credentials in the TURN REST
API shared-secret scheme, which coturn checks with `use-auth-secret` and `static-auth-secret`."""

import base64
import hashlib
import hmac
import time

from django.conf import settings


def turn_credential(secret, username):
    """base64(HMAC-SHA1(secret, username)): the TURN server recomputes it from the username."""
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()


def ice_servers_for(*, user):
    servers = []
    if settings.STUN_URLS:
        servers.append({"urls": settings.STUN_URLS})
    if settings.TURN_URLS:
        # "<expiry unix time>:<user id>": the TURN server refuses it once the expiry has passed.
        username = f"{int(time.time()) + settings.TURN_CREDENTIAL_TTL}:{user.pk}"
        credential = turn_credential(settings.TURN_SECRET, username)
        servers.append({"urls": settings.TURN_URLS, "username": username, "credential": credential})
    return {"ice_servers": servers, "ttl": settings.TURN_CREDENTIAL_TTL}
