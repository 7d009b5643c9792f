from functools import partial

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from contacts.selectors import presence_seen_by
from groups import selectors, services
from groups.serializers import (
    GroupOut,
    GroupUpdateIn,
    InviteIn,
    InviteOut,
    MemberListOut,
    MemberOut,
    RoleIn,
    group_data,
    member_data,
)
from imserver.api import page_params, parse_id, stranger_gets_404_first, validated


class GroupViewSet(viewsets.ViewSet):
    """Groups, their members and roles (contract 6). Non-members get 404 everywhere."""

    lookup_url_kwarg = "group_id"
    lookup_value_regex = "g[0-9]{1,18}"
    throttle_scope = "write"

    def get_throttles(self):
        return [] if self.request.method == "GET" else super().get_throttles()

    @extend_schema(responses={200: GroupOut})
    def retrieve(self, request, group_id):
        membership = selectors.group_for_member(user=request.user, group_id=parse_id("g", group_id))
        return Response(group_data(selectors.group_with_stats(membership.conversation.group.pk)))

    @extend_schema(request=GroupUpdateIn, responses={200: GroupOut})
    def partial_update(self, request, group_id):
        pk = parse_id("g", group_id)
        with stranger_gets_404_first(partial(selectors.group_for_member, user=request.user, group_id=pk)):
            data = validated(GroupUpdateIn, request.data)
            group = services.group_update_info(user=request.user, group_id=pk, **data)
        return Response(group_data(selectors.group_with_stats(group.pk)))

    @extend_schema(
        methods=["GET"],
        parameters=[OpenApiParameter("limit", int, description="Default 100."), OpenApiParameter("offset", int)],
        responses={200: MemberListOut},
    )
    @extend_schema(methods=["POST"], request=InviteIn, responses={200: InviteOut})
    @action(detail=True, methods=["get", "post"])
    def members(self, request, group_id):
        pk = parse_id("g", group_id)
        if request.method == "POST":
            with stranger_gets_404_first(partial(selectors.group_for_member, user=request.user, group_id=pk)):
                data = validated(InviteIn, request.data)
                invited = services.group_invite(user=request.user, group_id=pk, user_ids=data["user_ids"])
            return Response({"success": True, "invited_users": invited})
        membership = selectors.group_for_member(user=request.user, group_id=pk)
        limit, offset = page_params(request, default_limit=100)
        total, members = selectors.group_members(group=membership.conversation.group, limit=limit, offset=offset)
        seen = presence_seen_by(viewer_id=request.user.pk, users=[m.user for m in members])
        return Response({"total": total, "members": [member_data(m, seen[m.user_id]) for m in members]})

    @extend_schema(methods=["PATCH"], request=RoleIn, responses={200: MemberOut})
    @extend_schema(methods=["DELETE"], responses={204: None})
    @action(detail=True, methods=["patch", "delete"], url_path=r"members/(?P<user_id>[0-9]{1,18})")
    def member(self, request, group_id, user_id):
        pk = parse_id("g", group_id)
        if request.method == "DELETE":
            services.group_member_remove(user=request.user, group_id=pk, target_user_id=int(user_id))
            return Response(status=status.HTTP_204_NO_CONTENT)
        with stranger_gets_404_first(partial(selectors.group_for_member, user=request.user, group_id=pk)):
            role = validated(RoleIn, request.data)["role"]
            membership = services.group_member_set_role(
                user=request.user, group_id=pk, target_user_id=int(user_id), role=role
            )
        seen = presence_seen_by(viewer_id=request.user.pk, users=[membership.user])
        return Response(member_data(membership, seen[membership.user_id]))
