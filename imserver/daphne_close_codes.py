"""daphne lets an application close a socket only with 1000 or 3000-4999 (autobahn's sendClose
raises on the rest, and the socket is left open), but contract 7 closes an oversized frame with
1009, and a failed delivery closes with 1011: protocol codes RFC 6455 lets an endpoint send.
Under daphne those go out as the close frame autobahn itself sends for them."""

import sys

# RFC 6455 section 7.4.1 codes an endpoint may send (not 1005/1006/1015: never on the wire).
PROTOCOL_CODES = {1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013}


def allow_protocol_close_codes():
    """Lets daphne send PROTOCOL_CODES; nothing to do when another server runs the application."""
    ws_protocol = sys.modules.get("daphne.ws_protocol")
    if ws_protocol is None or getattr(ws_protocol.WebSocketProtocol, "sends_protocol_codes", False):
        return
    application_close = ws_protocol.WebSocketProtocol.serverClose

    def serverClose(self, code=None):
        if code in PROTOCOL_CODES:
            self.sendCloseFrame(code=code, isReply=False)
        else:
            application_close(self, code)

    ws_protocol.WebSocketProtocol.serverClose = serverClose
    ws_protocol.WebSocketProtocol.sends_protocol_codes = True
