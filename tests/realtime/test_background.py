import asyncio

from channels.testing import HttpCommunicator

from imserver.asgi import application
from realtime import background


async def test_first_request_starts_periodic_jobs(monkeypatch):
    runs = []

    async def job():
        runs.append(1)

    monkeypatch.setattr(background, "_jobs", {"job": (0.01, job)})
    monkeypatch.setattr(background, "_started_loop", None)
    communicator = HttpCommunicator(application, "GET", "/healthz")
    await communicator.get_response()
    await asyncio.sleep(0.1)
    assert len(runs) >= 3
    for task in asyncio.all_tasks():
        if task.get_name() == "job":
            task.cancel()


async def test_a_failing_job_keeps_running(monkeypatch):
    calls = []

    async def flaky():
        calls.append(1)
        raise RuntimeError("boom")

    monkeypatch.setattr(background, "_jobs", {"flaky": (0.01, flaky)})
    monkeypatch.setattr(background, "_started_loop", None)
    background.ensure_started()
    await asyncio.sleep(0.1)
    assert len(calls) >= 3
    for task in asyncio.all_tasks():
        if task.get_name() == "flaky":
            task.cancel()
