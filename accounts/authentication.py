from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

from accounts.tokens import user_for_token, verified_access_token


class AccessTokenAuthentication(JWTAuthentication):
    """Bearer access tokens; revoked (version bumped), banned or inactive users get 401."""

    def get_validated_token(self, raw_token):
        try:
            return verified_access_token(raw_token)
        except TokenError as exc:
            raise InvalidToken(str(exc)) from None

    def get_user(self, validated_token):
        return user_for_token(validated_token)


def token_user_or_none(request):
    """The user of a valid bearer token on a public route, else None (there a stale or bad token
    is no error: the route needs none)."""
    try:
        authenticated = AccessTokenAuthentication().authenticate(request)
    except AuthenticationFailed:
        return None
    return authenticated[0] if authenticated else None
