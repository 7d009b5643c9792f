from rest_framework_simplejwt.authentication import JWTAuthentication

from accounts.tokens import user_for_token


class AccessTokenAuthentication(JWTAuthentication):
    """Bearer access tokens; revoked (version bumped), banned or inactive users get 401."""

    def get_user(self, validated_token):
        return user_for_token(validated_token)
