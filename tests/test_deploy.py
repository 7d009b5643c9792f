"""The deploy/ kit, as docs/deployment-kit.md tells an operator to run it: nginx with deploy/'s
own site file in front of gunicorn, uvicorn and the worker, each started by deploy/run, and a
smoke test through nginx (register, send, receive on a socket upgraded by nginx, upload,
/healthz)."""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import httpx
import pytest
from websockets.sync.client import connect

from tests import servers
from tests.servers import ROOT, cluster_marks, free_port

pytestmark = [
    *cluster_marks("the production layout shares PostgreSQL and Redis between its processes"),
    pytest.mark.skipif(shutil.which("nginx") is None, reason="needs Debian's nginx (.ci/run installs it)"),
]

METRICS_TOKEN = "smoke-test-scrape-token"


def render_site(**values):
    """deploy/nginx/imserver.conf with its ${...} placeholders (addresses and ports) filled in,
    as envsubst or the nginx image would."""
    site = (ROOT / "deploy/nginx/imserver.conf").read_text()
    return re.sub(r"\$\{(REST_ADDRESS|SOCKET_ADDRESS|LISTEN)\}", lambda match: values[match[1]], site)


class Layout:
    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.rest_port, self.socket_port, self.nginx_port = free_port(), free_port(), free_port()
        self.worker_metrics_port = free_port()
        self.base = f"http://127.0.0.1:{self.nginx_port}"
        self.environment = {
            **os.environ,
            "PYTHON": sys.executable,
            "IMSERVER_ENV": "production",
            "SECRET_KEY": "deploy-smoke-test-" + "k" * 50,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",  # TLS ends in front of nginx in this layout
            "EMAIL_HOST": "127.0.0.1",
            "DATABASE_URL": servers.test_database_url(),
            "RATE_LIMITS": "off",
            "TRUSTED_PROXIES": "127.0.0.1",
            "IMSERVER_VAR_DIR": str(tmp_path / "var"),
            "MEDIA_ROOT": str(tmp_path / "media"),
            "METRICS_DIR": str(tmp_path / "metrics"),
            "METRICS_TOKEN": METRICS_TOKEN,
            "METRICS_WORKER_LISTEN": f"127.0.0.1:{self.worker_metrics_port}",
            "REST_BIND": f"127.0.0.1:{self.rest_port}",
            "REST_WORKERS": "2",
            "REST_THREADS": "2",
            "SOCKET_HOST": "127.0.0.1",
            "SOCKET_PORT": str(self.socket_port),
            "LOG_FORMAT": "json",
            "DATABASE_POOL_MIN": "1",
            "DATABASE_POOL_MAX": "4",
        }
        self.processes = {}

    def run(self, tier):
        log = open(self.tmp / f"{tier}.log", "wb")  # noqa: SIM115  (kept open for the process's life)
        self.processes[tier] = subprocess.Popen(
            [str(ROOT / "deploy/run"), tier], cwd=ROOT, env=self.environment, stdout=log, stderr=subprocess.STDOUT
        )

    def start_nginx(self):
        site = render_site(
            REST_ADDRESS=f"127.0.0.1:{self.rest_port}",
            SOCKET_ADDRESS=f"127.0.0.1:{self.socket_port}",
            LISTEN=f"127.0.0.1:{self.nginx_port}",
        )
        (self.tmp / "site.conf").write_text(site)
        prefix = self.tmp / "nginx"
        prefix.mkdir()
        # The main file every nginx install has; only the site is deploy/'s.
        (self.tmp / "nginx.conf").write_text(
            f"""
            worker_processes 1;
            pid {prefix}/nginx.pid;
            error_log {prefix}/error.log;
            events {{}}
            http {{
                access_log {prefix}/access.log;
                client_body_temp_path {prefix}/body;
                proxy_temp_path {prefix}/proxy;
                fastcgi_temp_path {prefix}/fastcgi;
                uwsgi_temp_path {prefix}/uwsgi;
                scgi_temp_path {prefix}/scgi;
                include {self.tmp}/site.conf;
            }}
            """
        )
        checked = subprocess.run(
            ["nginx", "-t", "-p", str(prefix), "-c", str(self.tmp / "nginx.conf")], capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stderr
        log = open(self.tmp / "nginx.log", "wb")  # noqa: SIM115
        self.processes["nginx"] = subprocess.Popen(
            ["nginx", "-p", str(prefix), "-c", str(self.tmp / "nginx.conf"), "-g", "daemon off;"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def wait_healthy(self, url, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for tier, process in self.processes.items():
                assert process.poll() is None, f"{tier} exited:\n{self.log(tier)}"
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{url} never became healthy:\n" + "\n".join(self.log(t) for t in self.processes))

    def log(self, tier):
        return (self.tmp / f"{tier}.log").read_text(errors="replace")

    def stop(self):
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def layout(tmp_path):
    layout = Layout(tmp_path)
    migrated = subprocess.run(
        [str(ROOT / "deploy/run"), "migrate"], cwd=ROOT, env=layout.environment, capture_output=True, text=True
    )
    assert migrated.returncode == 0, migrated.stderr
    try:
        for tier in ("rest", "sockets", "worker"):
            layout.run(tier)
        layout.start_nginx()
        layout.wait_healthy(f"http://127.0.0.1:{layout.rest_port}/healthz")
        layout.wait_healthy(f"http://127.0.0.1:{layout.socket_port}/healthz")
        layout.wait_healthy(f"{layout.base}/healthz")
        yield layout
    finally:
        layout.stop()


def register(base, username):
    body = {"username": username, "password": "Sup3r-secret!", "email": f"{username}@example.com"}
    response = httpx.post(f"{base}/v1/auth/register", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def test_smoke_through_nginx(layout):
    base = layout.base
    health = httpx.get(f"{base}/healthz", headers={"X-Request-ID": "lb-smoke-1"})
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.headers["X-Request-ID"] == "lb-smoke-1"

    alice, bob = register(base, "alice"), register(base, "bob")
    alice_auth = {"Authorization": f"Bearer {alice['token']}"}

    # bob's socket, upgraded by nginx and served by uvicorn
    with connect(f"ws://127.0.0.1:{layout.nginx_port}/ws?token={bob['token']}", open_timeout=10) as socket:
        socket.send(json.dumps({"type": "ping", "data": {"timestamp": 1}}))
        assert json.loads(socket.recv(timeout=10))["type"] == "pong"

        created = httpx.post(
            f"{base}/v1/conversations", json={"type": "private", "target_id": bob["user_id"]}, headers=alice_auth
        )
        assert created.status_code == 201, created.text
        conversation_id = created.json()["conversation_id"]
        sent = httpx.post(
            f"{base}/v1/conversations/{conversation_id}/messages",
            json={"type": "text", "content": "hello through nginx"},
            headers=alice_auth,
        )
        assert sent.status_code == 201, sent.text
        deadline = time.monotonic() + 10
        while True:
            frame = json.loads(socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if frame["type"] == "new_message":
                break
        assert frame["data"]["content"] == "hello through nginx"

    # an upload through nginx (streamed to gunicorn), then fetched from its signed URL
    data = os.urandom(3 * 1024 * 1024)
    uploaded = httpx.post(
        f"{base}/v1/media/upload",
        data={"type": "file"},
        files={"file": ("notes.bin", data, "application/octet-stream")},
        headers=alice_auth,
        timeout=30,
    )
    assert uploaded.status_code == 201, uploaded.text
    fetched = httpx.get(uploaded.json()["url"])
    assert fetched.status_code == 200 and fetched.content == data

    # metrics: never through the public site, to the scraper with its token on the tier itself
    assert httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).status_code == 404
    scraped = httpx.get(
        f"http://127.0.0.1:{layout.rest_port}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    assert scraped.status_code == 200
    assert 'route="v1/auth/register' in scraped.text
    worker_metrics = f"http://127.0.0.1:{layout.worker_metrics_port}/metrics"
    assert httpx.get(worker_metrics).status_code == 404
    scraped = httpx.get(worker_metrics, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert scraped.status_code == 200
    assert "imserver_db_query_duration_seconds" in scraped.text  # the maintenance's queries

    # the worker ran the daily maintenance and keeps running
    assert layout.processes["worker"].poll() is None
    assert "idempotency keys" in layout.log("worker")
    # LOG_FORMAT=json, as env.example sets it
    lines = [json.loads(line) for line in layout.log("worker").splitlines() if line.startswith("{")]
    assert any(line["message"].startswith("worker started") for line in lines)
