"""OpenAPI post-processing: the one error shape, documented on every operation."""

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Stable, machine-readable reason."},
                "message": {"type": "string", "description": "What was wrong, for people."},
                "fields": {"type": "object", "additionalProperties": True,
                           "description": "Per-field errors, for invalid input."},
            },
        }
    },
}
ERRORS = {
    "400": "Invalid input (see `error.fields`).",
    "401": "No API key, or an unknown, revoked or expired one.",
    "403": "The key lacks the scope this needs, or the feature is not enabled.",
    "404": "Not found — including another account's objects.",
    "409": "Conflicts with the current state (e.g. a taken slug).",
    "429": "Over a rate limit or queue ceiling; see `Retry-After`.",
}


def add_error_responses(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    ref = {"$ref": "#/components/schemas/Error"}
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/") or path.startswith(("/api/v1/schema", "/api/v1/docs")):
            continue
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"} or not operation.get("security"):
                continue  # Not an operation, or a public one (the index): none of these errors.
            responses = operation.setdefault("responses", {})
            for status, description in ERRORS.items():
                responses.setdefault(status, {
                    "description": description,
                    "content": {"application/json": {"schema": ref}},
                    **({"headers": {"Retry-After": {"schema": {"type": "integer"}}}} if status == "429" else {}),
                })
    return result
