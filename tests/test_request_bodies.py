"""Contract 23 under a real daphne: a body over its route's limit is refused with 413 before it is
read in full (by Content-Length, or as soon as a streamed body passes the limit), and an upload's
bearer token is checked before its body is read."""

import socket

import httpx
import pytest

from tests.servers import Server, register

LIMIT = 100_000  # REQUEST_MAX_BYTES of the server under test


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    started = Server(tmp_path_factory.mktemp("daphne"), REQUEST_MAX_BYTES=str(LIMIT))
    yield started
    started.stop()


def connect(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return sock


def response_of(sock):
    """The status and body of the response, read until the server closes the connection."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def head(path, **headers):
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_declared_length_over_the_limit_is_413_before_any_byte_of_it(server):
    with connect(server) as sock:
        sock.sendall(head("/v1/auth/login", Content_Length=2 * 1024**3))  # and not one byte of the body
        status, body = response_of(sock)
    assert status == 413 and b'"code":413' in body


def test_a_streamed_body_is_cut_off_once_it_passes_the_limit(server):
    sent = 0
    with connect(server) as sock:
        sock.sendall(head("/v1/auth/login", Transfer_Encoding="chunked"))
        chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
        try:
            while sent < 200 * LIMIT:
                sock.sendall(chunk)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, _ = response_of(sock)
    assert status == 413
    assert sent < 50 * LIMIT  # the kernel's buffers took some more before the close reached us


def test_an_upload_without_a_valid_token_is_401_before_its_body(server):
    for authorization in ({}, {"Authorization": "Bearer not-a-token"}):
        with connect(server) as sock:
            sock.sendall(
                head("/v1/media/upload", Content_Length=50 * 1024**2, **authorization).replace(
                    b"application/json", b"multipart/form-data; boundary=x"
                )
            )
            status, body = response_of(sock)
        assert status == 401 and b'"code":401' in body


def test_bodies_within_the_limit_reach_the_application(server):
    response = httpx.post(f"{server.base}/v1/auth/login", json={"username": "nobody", "password": "x"}, trust_env=False)
    assert response.status_code == 401
    token = register(server.base, "uploader")["token"]
    response = httpx.post(
        f"{server.base}/v1/media/upload",
        data={"type": "file"},
        files={"file": ("a.bin", b"x" * (2 * LIMIT))},  # uploads have their own, larger limit
        headers={"Authorization": f"Bearer {token}"},
        trust_env=False,
    )
    assert response.status_code == 201, response.text
