"""The admin site: Django's, logging in through the API's login service (the same lockout and
counters, contract 23) with a TOTP code for accounts that enrolled one, refusing banned staff,
sending staff to enrol while a second factor is required (ADMIN_REQUIRE_2FA, or the security
policy a superuser sets here), and revoking a user's tokens when they change their own password
here, as every other password change does."""

import base64
import io
from functools import update_wrapper

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm, AdminPasswordChangeForm
from django.contrib.auth.views import PasswordChangeView
from django.core.exceptions import PermissionDenied as AdminForbidden
from django.core.exceptions import ValidationError
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django_otp import login as otp_login
from django_otp.qr import write_qrcode_image
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied, Throttled

from accounts.selectors import totp_device_confirmed
from accounts.services import admin_login, totp_device_confirm, totp_device_start, user_password_set
from imserver.ratelimit import client_address
from moderation import selectors
from moderation.selectors import staff_two_factor_required
from moderation.services import security_policy_set

# The admin pages a staff account that must enrol a second factor may still open.
ENROLMENT_PAGES = {"two_factor", "logout"}


def locked_out_error(refused):
    return ValidationError(f"Too many failed logins; try again in {refused.wait:.0f} seconds.", code="locked_out")


class LoginForm(AdminAuthenticationForm):
    otp_token = forms.CharField(
        label="Two-factor code",
        required=False,
        max_length=16,
        help_text="The 6-digit code of your authenticator app, if you enrolled one.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        # One message for a wrong password and a wrong code: neither tells the password was right.
        "invalid_login": "Please enter a correct username and password, and the two-factor code if "
        "your account has one. Note that both fields may be case-sensitive.",
    }

    def clean(self):
        username, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if username is None or not password:
            return self.cleaned_data
        try:
            self.user_cache, device = admin_login(
                username=username,
                password=password,
                otp_token=self.cleaned_data.get("otp_token") or "",
                address=client_address(self.request.META),
            )
        except Throttled as refused:
            raise locked_out_error(refused)
        except PermissionDenied:
            raise ValidationError("This account is banned.", code="banned")
        except AuthenticationFailed:
            raise self.get_invalid_login_error()
        self.user_cache.backend = "django.contrib.auth.backends.ModelBackend"  # the password's backend
        if device is not None:
            self.user_cache.otp_device = device  # django-otp marks the session verified at login
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


class TokenForm(forms.Form):
    otp_token = forms.CharField(label="Code", max_length=16, widget=forms.TextInput(attrs={"autocomplete": "off"}))


class PolicyForm(forms.Form):
    require_staff_2fa = forms.BooleanField(
        label="Require two-factor authentication for every staff account",
        required=False,
        help_text="While on, staff without a confirmed device can only enrol one (or log out); "
        "yours too, if you have none.",
    )
    reason = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="For the audit log.",
    )


def second_factor_missing(request):
    """Whether the signed-in staff user must enrol a second factor before using the admin."""
    return not request.user.is_verified() and staff_two_factor_required()


class Site(admin.AdminSite):
    login_form = LoginForm

    def has_permission(self, request):
        """Staff, not banned, and, for an account with a confirmed device, a session it verified
        (a session from before the enrolment, or one made without the code, must log in again)."""
        if not super().has_permission(request) or request.user.is_banned:
            return False
        return request.user.is_verified() or self.confirmed_device(request) is None

    @staticmethod
    def confirmed_device(request):
        """The user's confirmed TOTP device, looked up once a request."""
        cached = getattr(request, "_confirmed_totp_device", None)
        if cached is None or cached[0] != request.user.pk:
            cached = request._confirmed_totp_device = (request.user.pk, totp_device_confirmed(user=request.user))
        return cached[1]

    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)

        def enrolled_first(request, *args, **kwargs):
            name = request.resolver_match.url_name if request.resolver_match else None
            if name not in ENROLMENT_PAGES and self.has_permission(request) and second_factor_missing(request):
                return redirect("admin:two_factor")
            return inner(request, *args, **kwargs)

        return update_wrapper(enrolled_first, inner)

    def get_urls(self):
        return [
            path("two-factor/", self.admin_view(self.two_factor), name="two_factor"),
            path("security/", self.admin_view(self.security_policy), name="security_policy"),
            *super().get_urls(),
        ]

    def security_policy(self, request):
        """The admin's security policy: a superuser changes it (in the audit log); other staff
        get 403."""
        if not request.user.is_superuser:
            raise AdminForbidden
        policy = selectors.security_policy()
        form = PolicyForm(
            request.POST if request.method == "POST" else None, initial={"require_staff_2fa": policy.require_staff_2fa}
        )
        if form.is_valid():
            security_policy_set(actor=request.user, **form.cleaned_data)
            messages.success(request, "The security policy is saved.")
            return redirect("admin:security_policy")
        context = {
            **self.each_context(request),
            "title": "Security policy",
            "form": form,
            "forced": settings.ADMIN_REQUIRE_2FA,
            "changes": selectors.security_policy_changes(),
        }
        request.current_app = self.name
        return TemplateResponse(request, "admin/security_policy.html", context)

    def two_factor(self, request):
        """The signed-in user's own second factor: enrolment (QR code, otpauth URI, first code),
        or that it is on."""
        device = self.confirmed_device(request)
        form = TokenForm(request.POST or None)
        if device is None and request.method == "POST" and form.is_valid():
            try:
                device = totp_device_confirm(
                    user=request.user, token=form.cleaned_data["otp_token"], address=client_address(request.META)
                )
            except Throttled as refused:
                form.add_error(None, locked_out_error(refused))
            else:
                if device is None:
                    form.add_error("otp_token", "That code is not the current one; try the next.")
                else:
                    otp_login(request, device)
                    messages.success(request, "Two-factor authentication is on for your account.")
                    return redirect("admin:index")
        context = {**self.each_context(request), "title": "Two-factor authentication", "device": device}
        if device is None:
            pending = totp_device_start(user=request.user)
            svg = io.BytesIO()
            write_qrcode_image(pending.config_url, svg)
            context |= {
                "form": form,
                "otpauth_uri": pending.config_url,
                "secret": base64.b32encode(pending.bin_key).decode(),
                "qr_data_uri": "data:image/svg+xml;base64," + base64.b64encode(svg.getvalue()).decode(),
                "required": staff_two_factor_required(),
            }
        request.current_app = self.name
        return TemplateResponse(request, "admin/two_factor.html", context)

    def password_change(self, request, extra_context=None):
        request.current_app = self.name
        return PasswordChangeView.as_view(
            form_class=OwnPasswordChangeForm,
            success_url=reverse("admin:password_change_done", current_app=self.name),
            extra_context={**self.each_context(request), **(extra_context or {})},
        )(request)
