from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from accounts import devices, oauth, selectors, services
from accounts.authentication import token_user_or_none
from accounts.serializers import (
    AccountDeleteIn,
    AuthOut,
    DevicesOut,
    EmailConfirmIn,
    LoginIn,
    OAuthIn,
    PasswordChangeIn,
    PasswordConfirmIn,
    PasswordResetConfirmIn,
    PasswordResetIn,
    ProfilePatchIn,
    PushRegisterIn,
    PushRegistrationOut,
    RefreshTokenIn,
    RegisterIn,
    TokenPairOut,
    UserMeOut,
    UserPublicOut,
    UserSearchOut,
    UserSearchParams,
    auth_data,
    device_data,
    user_brief_data,
    user_me_data,
    user_public_data,
)
from accounts.tokens import token_device_id
from contacts.selectors import presence_seen_by, users_search_for
from imserver.api import page_params, validated
from imserver.ratelimit import client_address
from privacy import services as privacy_services

PUBLIC = {"permission_classes": [AllowAny], "authentication_classes": []}


class AuthViewSet(viewsets.ViewSet):
    """Registration, login and tokens (contract 2)."""

    throttle_scope = None  # set per action

    @extend_schema(request=RegisterIn, responses={201: AuthOut}, auth=[])
    @action(detail=False, methods=["post"], throttle_scope="register", **PUBLIC)
    def register(self, request):
        data = validated(RegisterIn, request.data)
        device = data.pop("device", None)
        user = services.user_register(**data)
        return Response(auth_data(user, devices.session_open(user=user, device=device)), status=status.HTTP_201_CREATED)

    @extend_schema(request=LoginIn, responses={200: AuthOut}, auth=[])
    @action(detail=False, methods=["post"], throttle_scope="login", **PUBLIC)
    def login(self, request):
        data = validated(LoginIn, request.data)
        device = data.pop("device", None)
        user = services.user_login(**data, address=client_address(request.META))
        return Response(auth_data(user, devices.session_open(user=user, device=device)))

    @extend_schema(request=RefreshTokenIn, responses={200: TokenPairOut}, auth=[])
    @action(detail=False, methods=["post"], throttle_scope="refresh", **PUBLIC)
    def refresh(self, request):
        data = validated(RefreshTokenIn, request.data)
        return Response(services.token_refresh(**data))

    @extend_schema(request=RefreshTokenIn, responses={204: None}, auth=[])
    @action(detail=False, methods=["post"], throttle_scope="refresh", **PUBLIC)
    def logout(self, request):
        data = validated(RefreshTokenIn, request.data)
        services.token_logout(**data)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=OAuthIn,
        responses={200: AuthOut},
        auth=[],
        parameters=[OpenApiParameter("provider", str, OpenApiParameter.PATH, enum=sorted(oauth.PROVIDERS))],
    )
    @action(
        detail=False,
        methods=["post"],
        url_path=r"oauth/(?P<provider>[^/]+)",
        throttle_scope="oauth",
        **PUBLIC,
    )
    def oauth(self, request, provider):
        if provider not in oauth.PROVIDERS:
            raise NotFound("Unknown OAuth provider")
        data = validated(OAuthIn, request.data)
        device = data.pop("device", None)
        user = oauth.oauth_login(request=request, provider=provider, **data)
        return Response(auth_data(user, devices.session_open(user=user, device=device)))

    @extend_schema(request=PasswordChangeIn, responses={200: TokenPairOut})
    @action(detail=False, methods=["post"], url_path="password/change", throttle_scope="login")
    def password_change(self, request):
        data = validated(PasswordChangeIn, request.data)
        return Response(
            services.user_password_change(
                user=request.user,
                device_id=token_device_id(request.auth),
                address=client_address(request.META),
                **data,
            )
        )

    @extend_schema(request=PasswordResetIn, responses={202: None}, auth=[])
    @action(detail=False, methods=["post"], url_path="password/reset", throttle_scope="password_reset", **PUBLIC)
    def password_reset(self, request):
        data = validated(PasswordResetIn, request.data)
        services.password_reset_request(
            **data, address=client_address(request.META), requester=token_user_or_none(request)
        )
        return Response(status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=PasswordResetConfirmIn, responses={204: None}, auth=[])
    @action(
        detail=False,
        methods=["post"],
        url_path="password/reset/confirm",
        throttle_scope="password_reset_confirm",
        **PUBLIC,
    )
    def password_reset_confirm(self, request):
        data = validated(PasswordResetConfirmIn, request.data)
        services.password_reset_confirm(**data, address=client_address(request.META))
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeViewSet(viewsets.ViewSet):
    """The caller's own profile (contract 3)."""

    @property
    def throttle_scope(self):
        # Deleting the account checks the password: limited like logins. A profile change may
        # decode and re-encode an avatar: limited like uploads, which cost the same.
        # Codes are tried against a per-user limit (the service's), resends against their own.
        return {"destroy": "login", "partial_update": "upload", "email_confirm_resend": "email_confirm_resend"}.get(
            self.action
        )

    delete_takes_body = True  # the password (imserver.schema documents it)

    @extend_schema(responses={200: UserMeOut})
    def retrieve(self, request):
        return Response(user_me_data(request.user))

    @extend_schema(request=ProfilePatchIn, responses={200: UserMeOut})
    def partial_update(self, request):
        data = validated(ProfilePatchIn, request.data)
        user = services.user_update_profile(user=request.user, **data)
        return Response(user_me_data(user))

    @extend_schema(request=EmailConfirmIn, responses={204: None}, summary="Confirm your email with the mailed code")
    def email_confirm(self, request):
        services.email_confirm(user=request.user, **validated(EmailConfirmIn, request.data))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={202: None}, summary="Mail a new email confirmation code")
    def email_confirm_resend(self, request):
        services.email_confirmation_send(request.user)
        return Response(status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=AccountDeleteIn,
        responses={204: None},
        description='Erases the account (README, "Deleting an account"). Accounts without a password '
        "(OAuth only) send no body.",
    )
    def destroy(self, request):
        data = validated(AccountDeleteIn, request.data)
        privacy_services.user_delete_own(user=request.user, address=client_address(request.META), **data)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserViewSet(viewsets.ViewSet):
    """Other users: search and public profiles (contract 3)."""

    throttle_scope = "search"
    lookup_url_kwarg = "user_id"
    lookup_value_regex = "[0-9]{1,18}"

    @extend_schema(
        parameters=[
            OpenApiParameter("query", str, required=True),
            OpenApiParameter("limit", int, description="Default 20, at most 100."),
            OpenApiParameter("offset", int),
        ],
        responses={200: UserSearchOut},
    )
    @action(detail=False, methods=["get"])
    def search(self, request):
        query = validated(UserSearchParams, request.query_params)["query"]
        limit, offset = page_params(request, default_limit=20)
        total, users = users_search_for(searcher=request.user, query=query, limit=limit, offset=offset)
        return Response({"total": total, "users": [user_brief_data(user) for user in users]})

    @extend_schema(responses={200: UserPublicOut})
    def retrieve(self, request, user_id):
        user = selectors.user_visible(user_id=int(user_id))
        return Response(user_public_data(user, presence_seen_by(viewer_id=request.user.pk, users=[user])[user.pk]))


class DeviceViewSet(viewsets.ViewSet):
    """The caller's devices (login sessions) and the current device's push registration (contract 11, 12)."""

    throttle_scope = "write"
    lookup_url_kwarg = "device_id"
    lookup_value_regex = "[^/]+"

    @extend_schema(responses={200: DevicesOut})
    def list(self, request):
        current = token_device_id(request.auth)
        rows = [
            device_data(device, current_device_id=current, push_enabled=devices.device_push_enabled(device))
            for device in devices.device_list(user=request.user)
        ]
        return Response({"devices": rows})

    @extend_schema(request=PasswordConfirmIn, responses={204: None})
    def destroy(self, request, device_id):
        data = validated(PasswordConfirmIn, request.data)
        devices.device_revoke(
            user=request.user, device_id=device_id, current_device_id=token_device_id(request.auth), **data
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=PasswordConfirmIn, responses={204: None})
    @action(detail=False, methods=["post"], url_path="logout-others")
    def logout_others(self, request):
        data = validated(PasswordConfirmIn, request.data)
        devices.devices_revoke_others(user=request.user, current_device_id=token_device_id(request.auth), **data)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(methods=["put"], request=PushRegisterIn, responses={200: PushRegistrationOut})
    @extend_schema(methods=["delete"], request=None, responses={204: None})
    @action(detail=False, methods=["put", "delete"], url_path="current/push")
    def push(self, request):
        device_id = token_device_id(request.auth)
        if request.method == "DELETE":
            devices.device_push_unregister(user=request.user, device_id=device_id)
            return Response(status=status.HTTP_204_NO_CONTENT)
        data = validated(PushRegisterIn, request.data)
        device = devices.device_push_register(user=request.user, device_id=device_id, **data)
        return Response({"device_id": f"d{device.pk}", "push_enabled": devices.device_push_enabled(device)})
