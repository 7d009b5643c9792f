"""OpenAPI additions: bearer auth, contract paths without the tolerated trailing slash, and the
error envelope (contract 1.1) on every operation."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


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
