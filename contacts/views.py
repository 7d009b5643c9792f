from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.response import Response

from contacts import selectors, services
from contacts.serializers import (
    BlockListOut,
    ContactAddIn,
    ContactListOut,
    ContactOut,
    ContactUpdateIn,
    PrivacySettingsIn,
    PrivacySettingsOut,
    block_data,
    contact_data,
    privacy_settings_data,
)
from imserver.api import page_params, parse_id, validated


def _contact_data(owner, contact):
    return contact_data(contact, selectors.presence_seen_by(viewer_id=owner.pk, users=[contact.user])[contact.user_id])


class _OtherUsersViewSet(viewsets.ViewSet):
    """Lists of other users addressed by user id; reading is free, changes count as writes."""

    lookup_url_kwarg = "user_id"
    lookup_value_regex = "[0-9]{1,18}"
    throttle_scope = "write"

    def get_throttles(self):
        return [] if self.request.method == "GET" else super().get_throttles()


class ContactViewSet(_OtherUsersViewSet):
    """The caller's address book (contract 4)."""

    @extend_schema(
        parameters=[OpenApiParameter("limit", int, description="Default 50."), OpenApiParameter("offset", int)],
        responses={200: ContactListOut},
    )
    def list(self, request):
        limit, offset = page_params(request, default_limit=50)
        total, contacts = selectors.contact_list(owner=request.user, limit=limit, offset=offset)
        seen = selectors.presence_seen_by(viewer_id=request.user.pk, users=[contact.user for contact in contacts])
        return Response({"total": total, "contacts": [contact_data(c, seen[c.user_id]) for c in contacts]})

    @extend_schema(request=ContactAddIn, responses={201: ContactOut})
    def create(self, request):
        data = validated(ContactAddIn, request.data)
        user_id = parse_id("", data["user_id"])  # None (malformed) is a 404 in the service's lookup
        contact = services.contact_add(owner=request.user, user_id=user_id, remark=data.get("remark", ""))
        return Response(_contact_data(request.user, contact), status=status.HTTP_201_CREATED)

    @extend_schema(request=ContactUpdateIn, responses={200: ContactOut})
    def partial_update(self, request, user_id):
        data = validated(ContactUpdateIn, request.data)
        contact = services.contact_update(owner=request.user, user_id=int(user_id), remark=data["remark"])
        return Response(_contact_data(request.user, contact))

    @extend_schema(responses={204: None})
    def destroy(self, request, user_id):
        services.contact_remove(owner=request.user, user_id=int(user_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class BlockViewSet(_OtherUsersViewSet):
    """The users the caller blocked (contract 16)."""

    @extend_schema(
        parameters=[OpenApiParameter("limit", int, description="Default 50."), OpenApiParameter("offset", int)],
        responses={200: BlockListOut},
    )
    def list(self, request):
        limit, offset = page_params(request, default_limit=50)
        total, blocks = selectors.block_list(owner=request.user, limit=limit, offset=offset)
        return Response({"total": total, "users": [block_data(block) for block in blocks]})

    @extend_schema(request=None, responses={204: None})
    def update(self, request, user_id):
        services.block_create(owner=request.user, user_id=int(user_id))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={204: None})
    def destroy(self, request, user_id):
        services.block_delete(owner=request.user, user_id=int(user_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class PrivacySettingsView(viewsets.ViewSet):
    """The caller's privacy settings (contract 16)."""

    throttle_scope = "write"

    def get_throttles(self):
        return [] if self.request.method == "GET" else super().get_throttles()

    @extend_schema(responses={200: PrivacySettingsOut})
    def retrieve(self, request):
        return Response(privacy_settings_data(selectors.privacy_settings_of(request.user)))

    @extend_schema(request=PrivacySettingsIn, responses={200: PrivacySettingsOut})
    def partial_update(self, request):
        changes = validated(PrivacySettingsIn, request.data)
        return Response(privacy_settings_data(services.privacy_settings_update(user=request.user, **changes)))
