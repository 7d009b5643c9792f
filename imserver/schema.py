"""OpenAPI additions: bearer auth, contract paths without the tolerated trailing slash, the
error envelope (contract 1.1) and Idempotency-Key (21) on every operation, a summary for each
(code generators name methods and doc comments from them), and a 3.0.3 rendering beside 3.1."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as BaseAutoSchema
from drf_spectacular.plumbing import is_list_serializer

VIEWSET_ACTIONS = {"list", "retrieve", "create", "update", "partial_update", "destroy"}


class AutoSchema(BaseAutoSchema):
    """Our list endpoints answer objects ({total, items...}), never bare arrays; operation ids
    follow the viewset action (conversations_list, conversations_retrieve, ...)."""

    def get_operation_id(self):
        tokens = [token.replace("-", "_") for token in self._tokenize_path()] or ["root"]
        action = getattr(self.view, "action", None)
        if action in VIEWSET_ACTIONS:
            return "_".join([*tokens, action])
        if action is not None:
            methods = [m for m, a in (getattr(self.view, "action_map", None) or {}).items() if a == action]
        else:
            methods = [m for m in self.view.allowed_methods if m not in ("HEAD", "OPTIONS")]
        if len(methods) == 1:  # e.g. auth_login, users_search
            return "_".join(tokens)
        verb = "list" if self.method == "GET" else self.method_mapping[self.method.lower()]
        return "_".join([*tokens, verb])

    def _get_request_body(self, direction="request"):
        # drf-spectacular documents bodies of PUT, PATCH and POST only; a view whose DELETE takes
        # one says so with delete_takes_body (DELETE /v1/user/me: the password).
        if self.method != "DELETE" or not getattr(self.view, "delete_takes_body", False):
            return super()._get_request_body(direction)
        self.method = "POST"
        try:
            return super()._get_request_body(direction)
        finally:
            self.method = "DELETE"

    def _is_list_view(self, serializer=None):
        if serializer is None:
            serializer = self.get_response_serializers()
        if isinstance(serializer, dict) and serializer:
            serializer = serializer[min(serializer, key=str)]
        return is_list_serializer(serializer)


class AccessTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.AccessTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


ERROR_SCHEMA = {
    "type": "object",
    "required": ["code", "message", "details"],
    "properties": {
        "code": {"type": "integer", "description": "The HTTP status code."},
        "message": {"type": "string", "description": "Short text for the status."},
        "details": {"type": "string", "description": "What went wrong, for humans."},
        "fields": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "description": "Validation errors: each invalid field with its messages.",
        },
    },
}


# One line per operation. A new route adds its line here (or passes summary= to extend_schema);
# tests/test_platform.py fails for an operation without one.
SUMMARIES = {
    ("GET", "/v1/blocks"): "List the users you blocked",
    ("PUT", "/v1/blocks/{user_id}"): "Block a user",
    ("DELETE", "/v1/blocks/{user_id}"): "Unblock a user",
    ("PATCH", "/v1/conversations/{conversation_id}/settings"): "Mute, pin or hide a conversation",
    ("POST", "/v1/conversations/{conversation_id}/clear"): "Clear a conversation's history for yourself",
    ("PATCH", "/v1/conversations/{conversation_id}/messages/{message_id}"): "Edit a message",
    ("DELETE", "/v1/conversations/{conversation_id}/messages/{message_id}"): "Delete a message for yourself",
    ("POST", "/v1/conversations/{conversation_id}/messages/{message_id}/recall"): "Recall a message for everyone",
    ("PUT", "/v1/conversations/{conversation_id}/messages/{message_id}/reactions/{emoji}"): "React to a message",
    ("DELETE", "/v1/conversations/{conversation_id}/messages/{message_id}/reactions/{emoji}"): "Take back a reaction",
    ("POST", "/v1/messages/forward"): "Forward messages to conversations",
    ("GET", "/v1/devices"): "List your devices (login sessions)",
    ("DELETE", "/v1/devices/{device_id}"): "Sign a device out",
    ("PUT", "/v1/devices/current/push"): "Register this device for push notifications",
    ("DELETE", "/v1/devices/current/push"): "Stop push notifications to this device",
    ("POST", "/v1/devices/logout-others"): "Sign out every other device",
    ("GET", "/v1/messages/search"): "Search your messages",
    ("GET", "/v1/user/me/settings"): "Your privacy settings",
    ("PATCH", "/v1/user/me/settings"): "Change your privacy settings",
    ("GET", "/v1/user/me/unread"): "What you have not read (the badge)",
    ("POST", "/v1/auth/register"): "Register an account",
    ("POST", "/v1/auth/login"): "Log in with username or email and password",
    ("POST", "/v1/auth/logout"): "Log out (revoke a refresh token)",
    ("POST", "/v1/auth/oauth/{provider}"): "Log in with Google, GitHub or Apple",
    ("POST", "/v1/auth/password/change"): "Change the password",
    ("POST", "/v1/auth/password/reset"): "Mail a password-reset code",
    ("POST", "/v1/auth/password/reset/confirm"): "Set a new password with a reset code",
    ("POST", "/v1/auth/refresh"): "Exchange a refresh token for a new token pair",
    ("GET", "/v1/calls"): "Call history",
    ("POST", "/v1/calls"): "Start a call",
    ("POST", "/v1/calls/{call_id}/accept"): "Accept a ringing call",
    ("POST", "/v1/calls/{call_id}/end"): "End or cancel a call",
    ("POST", "/v1/calls/{call_id}/reject"): "Reject a ringing call",
    ("GET", "/v1/calls/ice-servers"): "STUN and TURN servers with credentials",
    ("GET", "/v1/contacts"): "List contacts",
    ("POST", "/v1/contacts"): "Add a contact",
    ("PATCH", "/v1/contacts/{user_id}"): "Change a contact's remark",
    ("DELETE", "/v1/contacts/{user_id}"): "Remove a contact",
    ("GET", "/v1/conversations"): "List conversations, most recent activity first",
    ("POST", "/v1/conversations"): "Open a private conversation or create a group",
    ("GET", "/v1/conversations/{conversation_id}"): "One conversation",
    ("GET", "/v1/conversations/{conversation_id}/messages"): "Messages of a conversation, newest first",
    ("POST", "/v1/conversations/{conversation_id}/messages"): "Send a message",
    ("POST", "/v1/conversations/{conversation_id}/read"): "Mark a conversation read",
    ("GET", "/v1/groups/{group_id}"): "One group",
    ("PATCH", "/v1/groups/{group_id}"): "Change a group's name, avatar or announcement",
    ("GET", "/v1/groups/{group_id}/members"): "Members of a group",
    ("POST", "/v1/groups/{group_id}/members"): "Invite users to a group",
    ("PATCH", "/v1/groups/{group_id}/members/{user_id}"): "Change a member's role",
    ("DELETE", "/v1/groups/{group_id}/members/{user_id}"): "Remove a member or leave a group",
    ("POST", "/v1/media/upload"): "Upload an image, video, audio or file",
    ("POST", "/v1/reports"): "Report a user, message or group",
    ("GET", "/v1/sync"): "Events since a cursor (resume after being offline)",
    ("GET", "/v1/user/me"): "The caller's profile",
    ("PATCH", "/v1/user/me"): "Change the caller's profile",
    ("DELETE", "/v1/user/me"): "Delete the caller's account",
    ("GET", "/v1/users/{user_id}"): "A user's public profile",
    ("GET", "/v1/users/search"): "Search users",
}

MUTATING_METHODS = {"post", "put", "patch", "delete"}
IDEMPOTENCY_KEY_PARAMETER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "Repeat a request safely: within 24 hours the same key gets the first answer again "
    "(with Idempotent-Replayed: true); another body under it is 422, while the first still runs 409.",
}


def add_error_responses(result, generator, request, public):
    result["paths"] = {
        (path.rstrip("/") if len(path) > 1 else path): operations for path, operations in result["paths"].items()
    }
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if "summary" not in operation and (method.upper(), path) in SUMMARIES:
                operation["summary"] = SUMMARIES[method.upper(), path]
            if method in MUTATING_METHODS:
                operation.setdefault("parameters", []).append(IDEMPOTENCY_KEY_PARAMETER)
            operation["responses"].setdefault(
                "default",
                {
                    "description": "Any error: the envelope of contract 1.1 with the matching status.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
            )
    return result
