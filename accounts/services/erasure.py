"""The account's part of erasing a user (privacy.services.user_delete runs the whole)."""

from django_otp.plugins.otp_totp.models import TOTPDevice
from social_django.models import UserSocialAuth

from accounts.models import EmailConfirmation, PasswordResetCode, PasswordResetGuess, Status, User, deleted_username
from accounts.services.profile import user_update_profile
from accounts.services.tokens import user_revoke_tokens

DELETED_USER_NAME = "Deleted user"


def erase_user(user: User) -> User:
    """The account's part of an erasure (privacy.services.user_delete), in the caller's transaction:
    profile, password, social-auth links, TOTP devices, reset and confirmation codes go, tokens are
    revoked and sockets closed."""
    user = User.objects.select_for_update().get(pk=user.pk)
    user_update_profile(user=user, avatar="")  # the file goes once this commits
    user.username = deleted_username(user.pk)
    user.nickname = DELETED_USER_NAME
    user.email = user.first_name = user.last_name = user.status_message = ""
    user.set_unusable_password()
    user.is_active = user.is_staff = user.is_superuser = user.is_online = user.email_verified = False
    user.chosen_status = Status.ONLINE
    user.last_login = user.last_online = None
    user.save()
    user.groups.clear()
    user.user_permissions.clear()
    UserSocialAuth.objects.filter(user=user).delete()
    PasswordResetCode.objects.filter(user=user).delete()
    PasswordResetGuess.objects.filter(user=user).delete()
    EmailConfirmation.objects.filter(user=user).delete()
    TOTPDevice.objects.filter(user=user).delete()
    user_revoke_tokens(user)
    return user
