"""The absolute base URL that links in responses and events are built on.

PUBLIC_BASE_URL when configured, else the current request's scheme and host (set by
ApiErrorMiddleware). WebSocket frames carry no links: events are rendered where they are recorded.
"""

from contextvars import ContextVar

from django.conf import settings

request_base_url = ContextVar("request_base_url", default="")


def base_url_for_request(request):
    if settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL
    try:
        return f"{request.scheme}://{request.get_host()}"
    except Exception:  # DisallowedHost: the response will be a 400 anyway
        return ""


def absolute_url(path_or_url):
    """An absolute URL for a storage URL or path ('' stays '')."""
    if not path_or_url or "://" in path_or_url:
        return path_or_url
    base = settings.PUBLIC_BASE_URL or request_base_url.get() or "http://localhost"
    return base + path_or_url
