"""OAuth login for the mobile app (contract 2) on social-auth-app-django.

The app runs the provider's authorization step itself (with PKCE) and posts the code here; the
server exchanges it with the provider, then the pipeline finds, links or creates the user. An
existing local account is linked only through an email the provider says it verified.
"""

import re
import secrets

from django.db import IntegrityError, transaction
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied
from social_core.backends.apple import AppleIdAuth
from social_core.backends.github import GithubOAuth2
from social_core.backends.google import GoogleOAuth2
from social_core.backends.oauth import BaseOAuth2
from social_core.exceptions import AuthConfigurationError, AuthProviderError, SocialAuthBaseException
from social_django.models import DjangoStorage
from social_django.strategy import DjangoStrategy

from accounts.models import DELETED_USERNAME_RE, User
from accounts.normalization import user_matching
from imserver.api import ServiceUnavailable

PROVIDER_UNAVAILABLE = {"timeout", "connection_failed", "tls_error", "unavailable", "rate_limited"}


class AppCodeExchange:
    """The app holds the state and PKCE verifier; the server only exchanges the code."""

    STATE_PARAMETER = False
    REDIRECT_STATE = False

    def auth_complete_params(self, state=None):
        params = BaseOAuth2.auth_complete_params(self, state)
        if self.data.get("code_verifier"):
            params["code_verifier"] = self.data["code_verifier"]
        return params


class GoogleBackend(AppCodeExchange, GoogleOAuth2):
    def user_data(self, access_token, *args, **kwargs):
        # Unlike the stock backend, accept unverified emails: such an account is still a login,
        # it just never links to an existing local account (see associate_by_verified_email).
        return self.get_json(
            "https://www.googleapis.com/oauth2/v3/userinfo", headers={"Authorization": f"Bearer {access_token}"}
        )


class GithubBackend(AppCodeExchange, GithubOAuth2):
    pass


class AppleBackend(AppCodeExchange, AppleIdAuth):
    pass


PROVIDERS = {"google": GoogleBackend, "github": GithubBackend, "apple": AppleBackend}


class ApiStrategy(DjangoStrategy):
    """Takes the exchange's parameters from the JSON body instead of the query string."""

    def __init__(self, storage, request, data):
        self.api_data = data
        super().__init__(storage, request)

    def get_request_data(self, merge=True):
        return self.api_data


def verified_email(backend, response):
    """The email address the provider vouches for, or None."""
    if isinstance(backend, GoogleOAuth2):
        return response.get("email") if response.get("email_verified") is True else None
    if isinstance(backend, GithubOAuth2):
        email = (response.get("email") or "").lower()
        for entry in response.get("emails") or []:
            if isinstance(entry, dict) and entry.get("email", "").lower() == email and entry.get("verified"):
                return entry["email"]
        return None
    if isinstance(backend, AppleIdAuth):
        return response.get("email") if str(response.get("email_verified")).lower() == "true" else None
    return None


def associate_by_verified_email(backend, details, response, user=None, *args, **kwargs):
    """Pipeline step: a new social identity joins the local account with the same verified email."""
    if user is not None:
        return None
    email = verified_email(backend, response)
    if not email:
        return None
    # Both sides must have verified the address (contract 23): an account registered with someone
    # else's email, never confirmed, does not receive their OAuth login.
    existing = user_matching("email", email, User.objects.filter(is_active=True, email_verified=True))
    if existing is not None:
        return {"user": existing, "is_new": False}
    return None


def _free_username(wanted):
    base = re.sub(r"[^A-Za-z0-9_.-]", "", wanted or "")[:24] or "user"
    base = base if len(base) >= 3 else f"{base}_user"
    candidate = base
    while DELETED_USERNAME_RE.match(candidate) or user_matching("username", candidate):
        candidate = f"{base}_{secrets.token_hex(3)}"
    return candidate


def create_user(backend, details, response, user=None, *args, **kwargs):
    """Pipeline step: a user for a social identity nobody has yet (no usable password)."""
    if user is not None:
        return {"is_new": False}
    email = verified_email(backend, response) or ""
    if email and user_matching("email", email):
        email = ""
    nickname = (details.get("fullname") or details.get("first_name") or "")[:64]
    for _ in range(3):
        try:
            with transaction.atomic():
                # The provider vouches for the email: it counts as confirmed.
                new_user = User(
                    username=_free_username(details.get("username")), email=email, email_verified=bool(email)
                )
                new_user.nickname = nickname or new_user.username
                new_user.set_unusable_password()
                new_user.save()
                return {"is_new": True, "user": new_user}
        except IntegrityError:  # a concurrent sign-up took the name
            continue
    raise AuthenticationFailed("Could not create an account for this identity")


def _describe(exc):
    parts = [str(exc)]
    if exc.provider_code:
        parts.append(f"({exc.provider_code})")
    if exc.detail:
        parts.append(exc.detail)
    return " ".join(parts)


def _configured(backend):
    if isinstance(backend, AppleIdAuth):
        return all(backend.setting(name) for name in ("CLIENT", "TEAM", "KEY", "SECRET"))
    return all(backend.get_key_and_secret())


def oauth_login(*, request, provider, code, redirect_uri="", code_verifier=""):
    """Exchanges an authorization code with the provider; returns the logged-in user."""
    backend_class = PROVIDERS[provider]
    data = {"code": code, "redirect_uri": redirect_uri, "code_verifier": code_verifier}
    strategy = ApiStrategy(DjangoStorage, request._request, data)
    backend = backend_class(strategy, redirect_uri=redirect_uri or None)
    if not _configured(backend):
        raise ServiceUnavailable(f"{provider} login is not configured on this server")
    try:
        user = backend.complete()
    except AuthConfigurationError as exc:
        raise ServiceUnavailable(f"{provider} login is misconfigured: {_describe(exc)}") from None
    except AuthProviderError as exc:
        if exc.code in PROVIDER_UNAVAILABLE or (exc.status_code or 0) >= 500:
            raise ServiceUnavailable(f"{provider} cannot be reached: {_describe(exc)}") from None
        raise AuthenticationFailed(f"{provider} refused the code: {_describe(exc)}") from None
    except SocialAuthBaseException as exc:
        raise AuthenticationFailed(f"{provider} refused the code: {_describe(exc)}") from None
    if user is None or not user.is_active:
        raise AuthenticationFailed(f"{provider} login failed")
    if user.is_banned:
        raise PermissionDenied("This account is banned")
    return user
