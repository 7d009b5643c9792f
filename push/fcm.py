"""Firebase Cloud Messaging over the HTTP v1 API (the legacy API is gone).

OAuth2 access tokens come from a Google service-account file through google-auth, which signs
the JWT assertion and posts it to the file's `token_uri`; tokens are cached until shortly before
they expire. Each push is one `messages:send` call; many go out at once over one HTTP/2 connection.
"""

import asyncio
import json
from datetime import UTC, datetime

import google.auth.transport.requests
import httpx
from google.oauth2 import service_account

from push.notifications import Kind, Notification, Outcome, Result, Target, retry_after_seconds

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


def render(notification: Notification, target: Target) -> dict:
    """The `messages:send` body: a data message (the app draws the notification itself)."""
    data = dict(notification.data)
    if notification.title:
        data["title"] = notification.title
    if notification.body:
        data["body"] = notification.body
    android = {"priority": "NORMAL" if notification.kind is Kind.SILENT else "HIGH"}
    if notification.thread_id:
        android["collapse_key"] = notification.thread_id
    if notification.expires_at:
        seconds = int((notification.expires_at - datetime.now(UTC)).total_seconds())
        android["ttl"] = f"{max(seconds, 0)}s"
    return {"message": {"token": target.token, "data": data, "android": android}}


def _error_code(response: httpx.Response) -> str | None:
    """FCM's own error code (`UNREGISTERED`, ...) from the error details, else the status name."""
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return None
    for detail in error.get("details") or ():
        if isinstance(detail, dict) and detail.get("errorCode"):
            return detail["errorCode"]
    return error.get("status")


class FcmClient:
    provider = "fcm"

    def __init__(self, *, credentials_file: str, project_id: str | None, endpoint: str, timeout: float):
        self._credentials = service_account.Credentials.from_service_account_file(credentials_file, scopes=[SCOPE])
        if not project_id:
            with open(credentials_file, encoding="utf-8") as file:
                project_id = json.load(file)["project_id"]
        self._url = f"{endpoint.rstrip('/')}/v1/projects/{project_id}/messages:send"
        self._timeout = timeout
        self._http: httpx.AsyncClient | None = None
        self._token_lock = asyncio.Lock()

    async def _access_token(self, *, renew: bool = False) -> str:
        async with self._token_lock:
            if renew or not self._credentials.valid:
                # google-auth's transport is synchronous: refresh in a thread, once for all senders.
                await asyncio.to_thread(self._credentials.refresh, google.auth.transport.requests.Request())
            return self._credentials.token

    async def send(self, notification: Notification, target: Target) -> Outcome:
        if self._http is None:
            self._http = httpx.AsyncClient(http2=True, timeout=self._timeout)
        body = render(notification, target)
        for attempt in range(2):
            token = await self._access_token(renew=attempt > 0)
            try:
                response = await self._http.post(self._url, json=body, headers={"Authorization": f"Bearer {token}"})
            except httpx.HTTPError as error:
                return Outcome(Result.RETRY, detail=f"fcm: {error!r}")
            if response.status_code != 401:  # 401: our access token was refused; renew it once
                break
        return self._outcome(response, target)

    @staticmethod
    def _outcome(response: httpx.Response, target: Target) -> Outcome:
        status = response.status_code
        if status == 200:
            return Outcome(Result.SENT)
        code = _error_code(response)
        detail = f"fcm {status} {code}"
        if status == 404 or code in {"UNREGISTERED", "SENDER_ID_MISMATCH"}:
            return Outcome(Result.INVALID_TOKEN, detail=detail, invalid_token=target.token)
        if status == 429 or status >= 500 or status == 401:
            return Outcome(
                Result.RETRY, retry_after=retry_after_seconds(response.headers.get("retry-after")), detail=detail
            )
        return Outcome(Result.FAILED, detail=detail)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
