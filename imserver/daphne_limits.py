"""Bounds on what daphne holds for a client (contract 23): socket write buffers, request bodies,
connections that send nothing.

daphne writes whatever the application sends into the socket's Twisted transport, which buffers
without bound when the client stops reading (the consumer's send() never waits under daphne). The
transport's buffer is visible to the protocol: past WS_MAX_BUFFERED_BYTES the socket gets no more
frames, only a close with 4408 (contract 23), queued behind what it has not read; it is aborted if
it has not read up to it within WS_SLOW_CLOSE_SECONDS."""

import re
import resource
import sys
from http import HTTPStatus

import orjson
from django.conf import settings
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken

from imserver.api import MULTIPART_OVERHEAD, envelope

CLOSE_TOO_SLOW = 4408


def buffered_bytes(transport):
    """What a Twisted transport holds for the peer (abstract.FileDescriptor's write buffers)."""
    pending = len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
    return pending + getattr(transport, "_tempDataLen", 0)


def bound_socket_buffers():
    """Bounds what daphne buffers per socket; nothing to do when another server runs the application."""
    ws_protocol = sys.modules.get("daphne.ws_protocol")
    if ws_protocol is None or getattr(ws_protocol.WebSocketProtocol, "bounds_buffers", False):
        return
    application_send = ws_protocol.WebSocketProtocol.serverSend

    def serverSend(self, content, binary=False):
        if getattr(self, "too_slow", False):
            return
        if buffered_bytes(self.transport) > settings.WS_MAX_BUFFERED_BYTES:
            self.too_slow = True
            self.closeHandshakeTimeout = settings.WS_SLOW_CLOSE_SECONDS  # then autobahn aborts
            self.sendClose(code=CLOSE_TOO_SLOW)
            return
        application_send(self, content, binary)

    ws_protocol.WebSocketProtocol.serverSend = serverSend
    ws_protocol.WebSocketProtocol.bounds_buffers = True


# --- Request bodies ----------------------------------------------------------------------------
# daphne (Twisted) reads a whole request body, to a temporary file past 100 kB, before the
# application sees the request: a 2 GB chunked POST to /v1/auth/login was written to disk before
# any check. Here the body is refused with 413 as soon as Content-Length says it is over its route's
# limit or a streamed body passes it, and an upload is refused with 401 before its body is read when
# its bearer token is missing or invalid (revocation is checked later, by the view).

UPLOAD_PATH = re.compile(rb"^/v1/media/upload/?(?:\?|$)")


def body_limit(path):
    """The most a request to `path` may carry: an upload's largest type limit plus its multipart
    framing, REQUEST_MAX_BYTES for everything else (which Django enforces again)."""
    if UPLOAD_PATH.match(path):
        return max(settings.MEDIA_MAX_BYTES.values()) + MULTIPART_OVERHEAD
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def _bearer_token_valid(request):
    header = (request.requestHeaders.getRawHeaders(b"authorization") or [b""])[0].decode("latin-1")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw:
        return False
    try:
        AccessToken(raw.strip())
    except TokenError:
        return False
    return True


def _refuse(request, code, details):
    """Answers with the error envelope and closes the connection, the body left unread."""
    request.refused = True
    body = orjson.dumps(envelope(code, details))
    head = (
        f"HTTP/1.1 {code} {HTTPStatus(code).phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n"
    )
    if code == 401:
        head += 'WWW-Authenticate: Bearer realm="api"\r\n'
    request.channel.transport.write(head.encode() + b"\r\n" + body)
    request.channel.transport.loseConnection()


def bound_request_bodies():
    """Refuses oversized or unauthenticated bodies while daphne reads them; nothing to do when
    another server runs the application."""
    http_protocol = sys.modules.get("daphne.http_protocol")
    if http_protocol is None or getattr(http_protocol.WebRequest, "bounds_bodies", False):
        return
    web_request = http_protocol.WebRequest
    got_length, handle_chunk, request_received = (
        web_request.gotLength,
        web_request.handleContentChunk,
        web_request.requestReceived,
    )

    def gotLength(self, length):
        path = self.channel._path or b""
        self.body_limit, self.body_received = body_limit(path), 0
        if length is not None and length > self.body_limit:
            _refuse(self, 413, f"The request body is larger than {self.body_limit} bytes")
        elif UPLOAD_PATH.match(path) and not _bearer_token_valid(self):
            _refuse(self, 401, "Authentication credentials were not provided or are invalid")
        else:
            got_length(self, length)

    def handleContentChunk(self, data):
        if getattr(self, "refused", False):
            return
        self.body_received += len(data)
        if self.body_received > self.body_limit:
            _refuse(self, 413, f"The request body is larger than {self.body_limit} bytes")
            return
        handle_chunk(self, data)

    def requestReceived(self, command, path, version):
        if not getattr(self, "refused", False):  # a refused request never reaches the application
            request_received(self, command, path, version)

    web_request.gotLength = gotLength
    web_request.handleContentChunk = handleContentChunk
    web_request.requestReceived = requestReceived
    web_request.bounds_bodies = True


# --- Connections -------------------------------------------------------------------------------
# Every connection holds a descriptor, and daphne keeps one that never sends a request for Twisted's
# idle timeout (60 s): 1,100 half-open connections exhausted a daphne limited to 1,024 descriptors,
# after which Twisted accepted and dropped every new client and the application could open no file,
# database or Redis connection. Here an idle connection is closed after HTTP_IDLE_SECONDS, and the
# connections of the process stay HTTP_DESCRIPTOR_RESERVE below its descriptor limit: past that, a
# new connection closes the longest-open one that has no request head in (half-open, slowly sending
# its head, or idle between requests); when every one has, the new one is closed at once.


class ConnectionBound:
    """The open connections of one daphne process: HTTP ones by transport, longest-open first
    (until they close or become WebSockets), and a count of WebSockets."""

    def __init__(self, limit):
        self.limit = limit
        self.http = {}  # transport -> daphne's HTTP protocol on it
        self.websockets = 0

    def make_room(self):
        """True when one more connection fits, after closing an idle HTTP connection if need be."""
        if len(self.http) + self.websockets < self.limit:
            return True
        for transport, protocol in self.http.items():
            if _has_no_request_head(protocol):
                del self.http[transport]
                transport.abortConnection()  # nothing of ours to send it: free the descriptor now
                return True
        return False


def _has_no_request_head(protocol):
    """Twisted's HTTP/1.1 channel reads request lines and headers in line mode, and bodies (and
    what comes while it handles a request) in raw mode. HTTP/2 connections are never chosen."""
    channel = protocol._channel
    return bool(getattr(channel, "line_mode", 0)) and not getattr(channel, "_handlingRequest", True)


_connections = None


def connection_bound():
    """The process's ConnectionBound, its limit taken from `ulimit -n` when first asked."""
    global _connections
    if _connections is None:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        _connections = ConnectionBound(max(1, soft - settings.HTTP_DESCRIPTOR_RESERVE))
    return _connections


def bound_connections():
    """Times out idle connections and keeps descriptors in reserve; nothing to do when another
    server runs the application."""
    http_protocol, ws_protocol = sys.modules.get("daphne.http_protocol"), sys.modules.get("daphne.ws_protocol")
    if http_protocol is None or ws_protocol is None or getattr(http_protocol.HTTPFactory, "bounds_connections", False):
        return
    build_protocol = http_protocol.HTTPFactory.buildProtocol
    websocket = ws_protocol.WebSocketProtocol
    ws_made, ws_lost = websocket.connectionMade, websocket.connectionLost

    def buildProtocol(self, addr):
        bound = connection_bound()
        if not bound.make_room():
            return None  # Twisted closes the new connection
        protocol = build_protocol(self, addr)
        protocol.timeOut = settings.HTTP_IDLE_SECONDS
        make_connection, connection_lost = protocol.makeConnection, protocol.connectionLost

        def makeConnection(transport):
            bound.http[transport] = protocol
            make_connection(transport)

        def connectionLost(reason):
            bound.http.pop(protocol._channel.transport, None)
            connection_lost(reason)

        protocol.makeConnection, protocol.connectionLost = makeConnection, connectionLost
        return protocol

    def connectionMade(self):  # an HTTP connection upgraded: the same transport, a WebSocket now
        bound = connection_bound()
        bound.http.pop(self.transport, None)
        bound.websockets += 1
        ws_made(self)

    def connectionLost(self, reason):
        connection_bound().websockets -= 1
        ws_lost(self, reason)

    http_protocol.HTTPFactory.buildProtocol = buildProtocol
    websocket.connectionMade, websocket.connectionLost = connectionMade, connectionLost
    http_protocol.HTTPFactory.bounds_connections = True
