"""The admin site: Django's, logging in through the API's login service (the same lockout and
counters, contract 23), refusing banned staff and revoking a user's tokens when they change
their own password here, as every other password change does."""

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm, AdminPasswordChangeForm
from django.contrib.auth.views import PasswordChangeView
from django.core.exceptions import ValidationError
from django.urls import reverse
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied, Throttled

from accounts.services import user_login, user_password_set
from imserver.ratelimit import client_address


class LoginForm(AdminAuthenticationForm):
    def clean(self):
        username, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if username is None or not password:
            return self.cleaned_data
        try:
            self.user_cache = user_login(
                username=username, password=password, address=client_address(self.request.META)
            )
        except Throttled as refused:
            raise ValidationError(
                f"Too many failed logins; try again in {refused.wait:.0f} seconds.", code="locked_out"
            )
        except PermissionDenied:
            raise ValidationError("This account is banned.", code="banned")
        except AuthenticationFailed:
            raise self.get_invalid_login_error()
        self.user_cache.backend = "django.contrib.auth.backends.ModelBackend"  # the password's backend
        self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if user.is_banned:
            raise ValidationError("This account is banned.", code="banned")


class OwnPasswordChangeForm(AdminPasswordChangeForm):
    def save(self, commit=True):
        user_password_set(user=self.user, password=self.cleaned_data["new_password1"])
        return self.user


class Site(admin.AdminSite):
    login_form = LoginForm

    def has_permission(self, request):
        return super().has_permission(request) and not request.user.is_banned

    def password_change(self, request, extra_context=None):
        request.current_app = self.name
        return PasswordChangeView.as_view(
            form_class=OwnPasswordChangeForm,
            success_url=reverse("admin:password_change_done", current_app=self.name),
            extra_context={**self.each_context(request), **(extra_context or {})},
        )(request)
