"""Fake push providers that speak the real protocols, for tests and benchmarks.

`FakeFcm`: Google's OAuth2 token endpoint (it verifies the service account's signed JWT
assertion) and the FCM HTTP v1 `messages:send` endpoint (it checks the access token and the
message's shape). `FakeApns`: an HTTP/2-only server over TLS with its own CA, which verifies the
ES256 provider token and APNs' headers. Both record what they accepted and answer with scripted
errors per device token (`fail(token, status, reason, times)`). `delay` (seconds) slows every
push answer, so that a test can catch a sender in the middle of a batch.
"""

import asyncio
import datetime
import json
import secrets
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.servers import free_port

GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"


class _Script:
    """Per-token scripted failures, shared by both fakes."""

    def __init__(self):
        self.lock = threading.Lock()
        self.failures = defaultdict(list)  # token -> [(status, reason, retry_after)]
        self.received = []  # what was accepted, in arrival order
        self.refused = []  # (token, status, reason) answered with an error
        self.delay = 0.0  # seconds before each push is answered

    def fail(self, token, status, reason, times=1, retry_after=None):
        with self.lock:
            self.failures[token].extend([(status, reason, retry_after)] * times)

    def next_failure(self, token):
        with self.lock:
            return self.failures[token].pop(0) if self.failures[token] else None

    def wait_for(self, count, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.01)
        raise AssertionError(f"expected {count} pushes, got {len(self.received)}: {self.received}")


class _ListeningServer(ThreadingHTTPServer):
    # socketserver's default backlog of 5 drops connection attempts of a sender opening 100
    # connections at once, which then wait for TCP's SYN retries (1 s, 3 s): Google's is deep.
    request_queue_size = 1024


class FakeFcm(_Script):
    project_id = "imserver-test"

    def __init__(self, directory: Path):
        super().__init__()
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_key = key.public_key()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.access_tokens = set()
        self.token_requests = 0
        self.credentials_file = directory / "fcm-service-account.json"
        self.credentials_file.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": self.project_id,
                    "private_key_id": "test-key",
                    "private_key": key.private_bytes(
                        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                    ).decode(),
                    "client_email": "push@imserver-test.iam.gserviceaccount.com",
                    "client_id": "1",
                    "token_uri": f"{self.url}/token",
                }
            )
        )
        self._server = _ListeningServer(("127.0.0.1", self.port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self, status, body, headers=()):
                encoded = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(encoded)))
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(encoded)

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.path == "/token":
                    return self._token(parse_qs(raw.decode()))
                if self.path == f"/v1/projects/{fake.project_id}/messages:send":
                    return self._send(raw)
                self._answer(404, {"error": {"code": 404, "status": "NOT_FOUND", "message": self.path}})

            def _token(self, form):
                assertion = form.get("assertion", [""])[0]
                try:
                    # google-auth names Google's token endpoint as the audience, whatever token_uri is.
                    claims = jwt.decode(
                        assertion, fake.public_key, algorithms=["RS256"], audience=GOOGLE_TOKEN_AUDIENCE
                    )
                except jwt.PyJWTError as error:
                    return self._answer(400, {"error": "invalid_grant", "error_description": str(error)})
                if "firebase.messaging" not in claims.get("scope", ""):
                    return self._answer(400, {"error": "invalid_scope"})
                token = secrets.token_urlsafe(16)
                with fake.lock:
                    fake.access_tokens.add(token)
                    fake.token_requests += 1
                self._answer(200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

            def _send(self, raw):
                time.sleep(fake.delay)
                bearer = self.headers.get("authorization", "").removeprefix("Bearer ")
                if bearer not in fake.access_tokens:
                    return self._answer(401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}})
                message = json.loads(raw)["message"]
                assert all(isinstance(value, str) for value in message["data"].values()), message
                failure = fake.next_failure(message["token"])
                if failure:
                    status, reason, retry_after = failure
                    with fake.lock:
                        fake.refused.append((message["token"], status, reason))
                    details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": reason}]
                    headers = [("retry-after", str(retry_after))] if retry_after is not None else []
                    return self._answer(
                        status, {"error": {"code": status, "status": reason, "details": details}}, headers
                    )
                with fake.lock:
                    fake.received.append(message)
                self._answer(200, {"name": f"projects/{fake.project_id}/messages/{secrets.token_hex(8)}"})

        return Handler


def _certificate(subject, issuer, public_key, signing_key, *, ca):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(signing_key, hashes.SHA256())


class FakeApns(_Script):
    key_id = "ABC123DEFG"
    team_id = "TEAM123456"
    topic = "com.example.imserver"

    def __init__(self, directory: Path):
        super().__init__()
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        signing_key = ec.generate_private_key(ec.SECP256R1())
        self.public_key = signing_key.public_key()
        self.key_file = directory / f"AuthKey_{self.key_id}.p8"
        self.key_file.write_bytes(
            signing_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _certificate("imserver test CA", "imserver test CA", ca_key.public_key(), ca_key, ca=True)
        server_key = ec.generate_private_key(ec.SECP256R1())
        server_cert = _certificate("localhost", "imserver test CA", server_key.public_key(), ca_key, ca=False)
        self.ca_file = directory / "apns-ca.pem"
        self.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        self._cert_file = directory / "apns-server.pem"
        self._cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
        self._key_file = directory / "apns-server.key"
        self._key_file.write_bytes(
            server_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        self.provider_tokens = set()  # distinct provider tokens seen
        self.http_versions = set()
        self._loop = None
        self._stop = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._ready = threading.Event()

    def __enter__(self):
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake APNs server did not start")
        return self

    def __exit__(self, *exc):
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _serve(self):
        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"127.0.0.1:{self.port}"]
        config.certfile = str(self._cert_file)
        config.keyfile = str(self._key_file)
        config.alpn_protocols = ["h2"]  # APNs speaks HTTP/2 only
        config.accesslog = None
        config.errorlog = None

        async def main():
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._loop.call_soon(self._ready.set)
            await serve(self._app, config, shutdown_trigger=self._stop.wait)

        asyncio.run(main())

    async def _app(self, scope, receive, send):
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {name.decode(): value.decode() for name, value in scope["headers"]}
        await asyncio.sleep(self.delay)
        status, answer = self._handle(scope, headers, body)
        encoded = json.dumps(answer).encode() if answer is not None else b""
        response_headers = [(b"apns-id", secrets.token_hex(16).encode())]
        if answer is not None:
            response_headers.append((b"content-type", b"application/json"))
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": encoded})

    def _handle(self, scope, headers, body):
        with self.lock:
            self.http_versions.add(scope["http_version"])
        path = scope["path"]
        if scope["method"] != "POST" or not path.startswith("/3/device/"):
            return 404, {"reason": "BadPath"}
        token = path.removeprefix("/3/device/")
        provider_token = headers.get("authorization", "").removeprefix("bearer ")
        try:
            header = jwt.get_unverified_header(provider_token)
            claims = jwt.decode(provider_token, self.public_key, algorithms=["ES256"])
        except jwt.PyJWTError:
            return 403, {"reason": "InvalidProviderToken"}
        if header.get("kid") != self.key_id or claims.get("iss") != self.team_id:
            return 403, {"reason": "InvalidProviderToken"}
        if time.time() - claims["iat"] > 3600:
            return 403, {"reason": "ExpiredProviderToken"}
        push_type = headers.get("apns-push-type")
        expected_topic = f"{self.topic}.voip" if push_type == "voip" else self.topic
        if headers.get("apns-topic") != expected_topic:
            return 400, {"reason": "DeviceTokenNotForTopic"}
        if push_type not in {"alert", "background", "voip"}:
            return 400, {"reason": "InvalidPushType"}
        payload = json.loads(body)
        if push_type == "background" and (set(payload["aps"]) - {"badge", "content-available"}):
            return 400, {"reason": "BadPayload"}
        failure = self.next_failure(token)
        if failure:
            status, reason, _retry_after = failure
            with self.lock:
                self.refused.append((token, status, reason))
            return status, {"reason": reason}
        with self.lock:
            self.provider_tokens.add(provider_token)
            self.received.append({"token": token, "headers": headers, "payload": payload})
        return 200, None
