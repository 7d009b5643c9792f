"""Django's HTTP side under an ASGI server (daphne, uvicorn): each request's middleware and view
run in one pass, in one worker thread of a pool, as under a WSGI server.

Django's own ASGIHandler runs the middleware in async mode: every hook of every middleware that
is not async (Django's own, ours) is a hop to a thread and back, and the thread of those hops is
made anew for each request. Under load that cost about twice the CPU of the view itself
(docs/performance.md). Here a request costs one hop to the pool and one back; the pool's threads
are bounded (ASGI_HTTP_THREADS) and keep their database connections in the pool between requests.
"""

from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.db import close_old_connections
from django.http import FileResponse
from django.urls import set_script_prefix


class ThreadedASGIHandler(ASGIHandler):
    def __init__(self):
        base.BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        self.executor = ThreadPoolExecutor(max_workers=settings.ASGI_HTTP_THREADS, thread_name_prefix="http")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        in_pool = sync_to_async(self._respond, thread_sensitive=False, executor=self.executor)
        try:
            response = await in_pool(scope, body_file)
            try:
                await self.send_response(response, send)
            finally:
                if response.streaming:
                    await sync_to_async(response.close, thread_sensitive=False, executor=self.executor)()
        finally:
            body_file.close()

    def _respond(self, scope, body_file):
        """The response, made in a thread of the pool. A complete response is closed here, which
        sends request_finished in the thread whose database connection it hands back; a streamed
        one hands its connection back before its body is read (no view streams from the database)."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        response = error_response if request is None else self.get_response(request)
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        if response.streaming:
            close_old_connections()
        else:
            response.close()
        return response


def get_threaded_asgi_application():
    import django

    django.setup(set_prefix=False)
    return ThreadedASGIHandler()
