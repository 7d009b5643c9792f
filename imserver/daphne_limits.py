"""daphne writes whatever the application sends into the socket's Twisted transport, which buffers
without bound when the client stops reading (the consumer's send() never waits under daphne). The
transport's buffer is visible to the protocol: past WS_MAX_BUFFERED_BYTES the socket gets no more
frames, only a close with 4408 (contract 23), queued behind what it has not read; it is aborted if
it has not read up to it within WS_SLOW_CLOSE_SECONDS."""

import sys

from django.conf import settings

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
