"""GET /v1/calls/ice-servers: STUN from settings, TURN with TURN REST API credentials (coturn)."""

import base64
import hashlib
import hmac
import os
import subprocess
import sys
import time

import pytest

from calls.ice import turn_credential
from tests.servers import ROOT

pytestmark = pytest.mark.django_db


def test_nothing_configured(user_api):
    assert user_api.get("/v1/calls/ice-servers").json() == {"ice_servers": [], "ttl": 86400}


def test_stun_only(user_api, settings):
    settings.STUN_URLS = ["stun:stun1.example.com:3478", "stun:stun2.example.com:3478"]
    body = user_api.get("/v1/calls/ice-servers").json()
    assert body["ice_servers"] == [{"urls": ["stun:stun1.example.com:3478", "stun:stun2.example.com:3478"]}]


def test_turn_credentials_expire_and_verify(user, user_api, settings):
    settings.STUN_URLS = ["stun:turn.example.com:3478"]
    settings.TURN_URLS = ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349?transport=tcp"]
    settings.TURN_SECRET = "north-secret"
    settings.TURN_CREDENTIAL_TTL = 600
    before = int(time.time())
    body = user_api.get("/v1/calls/ice-servers").json()
    stun, turn = body["ice_servers"]
    assert stun == {"urls": ["stun:turn.example.com:3478"]}
    assert turn["urls"] == settings.TURN_URLS and body["ttl"] == 600
    expiry, user_id = turn["username"].split(":")
    assert user_id == str(user.pk)
    assert before + 600 <= int(expiry) <= int(time.time()) + 600
    # What coturn computes from the username with its static-auth-secret:
    expected = hmac.new(b"north-secret", turn["username"].encode(), hashlib.sha1).digest()
    assert base64.b64decode(turn["credential"]) == expected


def test_credential_known_answer():
    # printf '%s' '1700086400:42' | openssl dgst -binary -sha1 -hmac 'north-secret' | base64
    assert turn_credential("north-secret", "1700086400:42") == "UWXoDjwZ9B4odP04PG9KxJWLns0="


def test_turn_without_a_secret_refuses_to_start():
    env = {**os.environ, "TURN_URLS": "turn:turn.example.com:3478"}
    env.pop("TURN_SECRET", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and "TURN_URLS needs TURN_SECRET" in result.stderr
