"""OpenAPI additions: bearer auth, contract paths without the tolerated trailing slash, and the
error envelope (contract 1.1) on every operation."""

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


def add_error_responses(result, generator, request, public):
    result["paths"] = {
        (path.rstrip("/") if len(path) > 1 else path): operations for path, operations in result["paths"].items()
    }
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            operation["responses"].setdefault(
                "default",
                {
                    "description": "Any error: the envelope of contract 1.1 with the matching status.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
            )
    return result
