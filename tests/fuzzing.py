"""The checks of the bounded fuzz (contract 23, issue 19): no request answered with a 5xx, none
costing more than MAX_CPU_SECONDS of CPU, and every refusal in the contract's error envelope."""

import time

MAX_CPU_SECONDS = 2.0


def cpu_bounded(label, send, *args, **kwargs):
    """send(*args, **kwargs), which must cost under MAX_CPU_SECONDS of this process's CPU (the test
    client and schemathesis's WSGI calls run the request in this process, threads it starts included)."""
    started = time.process_time()
    response = send(*args, **kwargs)
    spent = time.process_time() - started
    assert spent < MAX_CPU_SECONDS, f"{label}: {spent:.2f} s of CPU"
    return response


def assert_answered(label, response):
    """No 5xx; a 4xx in the error envelope {code, message, details} with its status as code."""
    status = response.status_code
    assert status < 500, (label, status, response.content[:300])
    if status >= 400:
        body = response.json()
        assert body["code"] == status and isinstance(body["message"], str) and "details" in body, (label, body)
    return response


def assert_cheap_and_not_5xx(label, send, *args, **kwargs):
    return assert_answered(label, cpu_bounded(label, send, *args, **kwargs))
