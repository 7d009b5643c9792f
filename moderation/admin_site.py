"""The admin site: Django's, refusing banned staff and revoking a user's tokens when they change
their own password here (contract 23), as every other password change does."""

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm, AdminPasswordChangeForm
from django.contrib.auth.views import PasswordChangeView
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts.services import user_password_set


class LoginForm(AdminAuthenticationForm):
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
