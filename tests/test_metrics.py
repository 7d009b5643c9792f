"""Prometheus metrics: private to METRICS_TOKEN holders, HTTP by route, database, the IM's own."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import private_chat
from tests.realtime.test_consumer import open_socket, send_message

ROOT = Path(__file__).resolve().parent.parent


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0


@pytest.mark.django_db
class TestEndpoint:
    def test_hidden_without_a_configured_token(self, api, settings):
        settings.METRICS_TOKEN = None
        assert api.get("/metrics").status_code == 404

    def test_hidden_from_a_wrong_token(self, api, settings):
        settings.METRICS_TOKEN = "s3cret-scrape-token"
        assert api.get("/metrics", HTTP_AUTHORIZATION="Bearer guess").status_code == 404
        assert api.get("/metrics").status_code == 404

    def test_requests_by_route_and_database_queries(self, api, user_api, settings):
        settings.METRICS_TOKEN = "s3cret-scrape-token"
        user_api.get("/v1/users/12345")
        user_api.get("/v1/users/67890")
        response = api.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token")
        assert response.status_code == 200
        families = {family.name: family for family in text_string_to_metric_families(response.content.decode())}
        http = families["imserver_http_request_duration_seconds"]
        counts = [
            s
            for s in http.samples
            if s.name.endswith("_count") and s.labels["route"] == "v1/users/(?P<user_id>[0-9]{1,18})/?$"
        ]
        assert counts and counts[0].labels["method"] == "GET" and counts[0].value >= 2
        queries = families["imserver_db_query_duration_seconds"]
        assert any(s.name.endswith("_count") and s.value > 0 for s in queries.samples)
        for name in (
            "imserver_websockets_open",
            "imserver_events_published",
            "imserver_events_delivered",
            "imserver_gap_fills",
            "imserver_resyncs",
            "imserver_websockets_closed_backpressure",
            "imserver_push_jobs",
            "imserver_background_job_failures",
        ):
            assert name in families, name


@pytest.mark.django_db(transaction=True)
async def test_sockets_events_published_and_delivered_are_counted(alice, bob):
    from channels.db import database_sync_to_async

    conversation = await database_sync_to_async(private_chat)(alice, bob)
    before = [sample("imserver_websockets_open"), sample("imserver_events_published_total")]
    delivered = sample("imserver_events_delivered_total")
    socket = await open_socket(bob)
    assert sample("imserver_websockets_open") == before[0] + 1
    await send_message(alice, conversation, "hello")
    frame = await socket.receive_json_from(timeout=3)
    assert frame["type"] == "new_message"
    assert sample("imserver_events_published_total") > before[1]
    assert sample("imserver_events_delivered_total") == delivered + 1
    await socket.disconnect()
    assert sample("imserver_websockets_open") == before[0]


def test_multiprocess_mode_adds_up_every_worker(tmp_path):
    """Gunicorn and uvicorn workers are processes: with PROMETHEUS_MULTIPROC_DIR each writes its
    own numbers there and /metrics (in any worker) reports the sum."""
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "IMSERVER_VAR_DIR": str(tmp_path / "var")}
    for name in ("DATABASE_URL", "REDIS_URL"):
        environment.pop(name, None)
    count = "import django; django.setup(); from imserver import metrics; metrics.EVENTS_PUBLISHED.inc(3)"
    for _worker in range(2):
        subprocess.run([sys.executable, "-c", count], cwd=ROOT, env=environment, check=True, timeout=60)
    report = "import django; django.setup(); from imserver import metrics; print(metrics.exposition().decode())"
    output = subprocess.run(
        [sys.executable, "-c", report],
        cwd=ROOT,
        env=environment,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    ).stdout
    assert "imserver_events_published_total 6.0" in output


def test_the_grafana_dashboard_charts_only_metrics_that_exist():
    import json
    import re

    from imserver import metrics

    dashboard = json.loads((ROOT / "deploy/grafana-dashboard.json").read_text())
    charted = {
        re.sub(r"_(bucket|count|sum|total)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"imserver_[a-z_]+", target["expr"])
    }
    defined = {collector._name for collector in vars(metrics).values() if hasattr(collector, "_name")}
    assert charted <= {re.sub(r"_total$", "", name) for name in defined}
