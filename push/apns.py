"""Apple Push Notification service: token-based authentication over HTTP/2.

Every request carries a provider token, an ES256 JWT signed with the team's .p8 key; Apple
refuses one older than an hour and throttles new ones issued more often than every 20 minutes,
so one is kept for 50 minutes. Incoming calls go to the VoIP token (`apns-push-type: voip`,
topic `<bundle>.voip`) where the device asked for PushKit, else as a time-sensitive alert.
"""

import ssl
import time

import httpx
import jwt

from push.notifications import Kind, Notification, Outcome, Result, Target, retry_after_seconds

PRODUCTION_ENDPOINT = "https://api.push.apple.com"
SANDBOX_ENDPOINT = "https://api.sandbox.push.apple.com"
PROVIDER_TOKEN_SECONDS = 50 * 60
INVALID_TOKEN_REASONS = {"BadDeviceToken", "Unregistered", "DeviceTokenNotForTopic"}
STALE_PROVIDER_TOKEN_REASONS = {"ExpiredProviderToken", "InvalidProviderToken"}


def render(notification: Notification, target: Target, topic: str) -> tuple[str, dict, dict]:
    """(device token, request headers, JSON payload) for one push."""
    aps: dict = {}
    headers = {"apns-topic": topic}
    token = target.token
    if notification.kind is Kind.CALL and target.call_push == "voip" and target.voip_token:
        token = target.voip_token
        headers.update({"apns-push-type": "voip", "apns-topic": f"{topic}.voip", "apns-priority": "10"})
    elif notification.kind is Kind.SILENT:
        # A background push: no alert, no sound; the app clears or updates what it shows.
        headers.update({"apns-push-type": "background", "apns-priority": "5"})
        aps = {"content-available": 1, "badge": notification.badge}
    else:
        headers.update({"apns-push-type": "alert", "apns-priority": "10"})
        alert = {key: value for key, value in (("title", notification.title), ("body", notification.body)) if value}
        # With preview "none" the alert names nobody: the app localizes a generic line.
        aps = {
            "alert": alert or {"loc-key": "INCOMING_CALL" if notification.kind is Kind.CALL else "NEW_MESSAGE"},
            "badge": notification.badge,
            "sound": "default",
            "mutable-content": 1,
        }
        if notification.thread_id:
            aps["thread-id"] = notification.thread_id
        if notification.kind is Kind.CALL:
            aps["interruption-level"] = "time-sensitive"
    if notification.collapse_id:
        headers["apns-collapse-id"] = notification.collapse_id
    if notification.expires_at:
        headers["apns-expiration"] = str(int(notification.expires_at.timestamp()))
    return token, headers, {"aps": aps, **notification.data}


class ApnsClient:
    provider = "apns"

    def __init__(
        self,
        *,
        key_file: str,
        key_id: str,
        team_id: str,
        topic: str,
        endpoint: str | None,
        ca_file: str | None,
        timeout: float,
    ):
        with open(key_file, encoding="utf-8") as file:
            self._key = file.read()
        self._key_id, self._team_id, self._topic = key_id, team_id, topic
        self._endpoint = endpoint.rstrip("/") if endpoint else None
        self._ca_file = ca_file
        self._timeout = timeout
        self._http: httpx.AsyncClient | None = None
        self._provider_token: tuple[str, float] | None = None

    def provider_token(self, *, renew: bool = False) -> str:
        now = time.time()
        if renew or self._provider_token is None or now - self._provider_token[1] > PROVIDER_TOKEN_SECONDS:
            token = jwt.encode(
                {"iss": self._team_id, "iat": int(now)}, self._key, algorithm="ES256", headers={"kid": self._key_id}
            )
            self._provider_token = (token, now)
        return self._provider_token[0]

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            context = ssl.create_default_context()
            if self._ca_file:
                context.load_verify_locations(self._ca_file)
            self._http = httpx.AsyncClient(http2=True, verify=context, timeout=self._timeout)
        return self._http

    async def send(self, notification: Notification, target: Target) -> Outcome:
        device_token, headers, payload = render(notification, target, self._topic)
        endpoint = self._endpoint or (SANDBOX_ENDPOINT if target.sandbox else PRODUCTION_ENDPOINT)
        for attempt in range(2):
            headers["authorization"] = f"bearer {self.provider_token(renew=attempt > 0)}"
            try:
                response = await self._client().post(
                    f"{endpoint}/3/device/{device_token}", json=payload, headers=headers
                )
            except httpx.HTTPError as error:
                return Outcome(Result.RETRY, detail=f"apns: {error!r}")
            reason = _reason(response)
            if not (response.status_code == 403 and reason in STALE_PROVIDER_TOKEN_REASONS):
                break
        return _outcome(response, reason, device_token)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def _reason(response: httpx.Response) -> str | None:
    if response.status_code == 200:
        return None
    try:
        return response.json().get("reason")
    except ValueError:
        return None


def _outcome(response: httpx.Response, reason: str | None, device_token: str) -> Outcome:
    status = response.status_code
    if status == 200:
        return Outcome(Result.SENT)
    detail = f"apns {status} {reason}"
    if status == 410 or reason in INVALID_TOKEN_REASONS:
        return Outcome(Result.INVALID_TOKEN, detail=detail, invalid_token=device_token)
    if status == 429 or status >= 500 or reason in STALE_PROVIDER_TOKEN_REASONS:
        return Outcome(
            Result.RETRY, retry_after=retry_after_seconds(response.headers.get("retry-after")), detail=detail
        )
    return Outcome(Result.FAILED, detail=detail)
