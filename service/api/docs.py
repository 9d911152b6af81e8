"""The OpenAPI document and its page, behind the API key like every other endpoint."""

from __future__ import annotations

import copy
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse

from service.api import examples
from service.api.deps import OwnerDep
from service.errors import PROBLEM_MEDIA_TYPE
from service.web import SWAGGER_CSS_URL, SWAGGER_FAVICON_URL, SWAGGER_JS_URL

router = APIRouter(include_in_schema=False)

PROBLEM_SCHEMA = {"$ref": "#/components/schemas/Problem"}
# Refusals made before a request reaches any route; every operation can get them.
CONNECTION_REFUSALS = {
    "408": "The request head (request line and headers) did not arrive within "
    "INGEST_HEADER_TIMEOUT_S; the connection is closed.",
    "431": "The request head is larger than INGEST_MAX_HEADER_BYTES (64 KiB); the connection "
    "is closed.",
}
SUBMIT_LINKS = {
    "GetJob": ("getJob", "Poll the job."),
    "CancelJob": ("cancelJob", "Cancel the job."),
    "DeleteJob": ("deleteJob", "Delete the job and its files."),
    "GetResult": ("getResult", "Download its records once it has succeeded."),
    "GetRowErrors": ("getRowErrors", "Page through its row errors."),
    "FollowJob": ("followJob", "Follow it as Server-Sent Events."),
}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, corrected to what the service does.

    Invalid parameters are answered with 400 problem+json, not FastAPI's 422; every error is
    problem+json; optional parameters are absent rather than null; the job endpoints take a
    bearer API key when INGEST_API_KEYS is set.
    """
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        for path, operations in schema["paths"].items():
            for operation in operations.values():
                _correct_operation(operation, path)
        for link_name, (operation_id, description) in SUBMIT_LINKS.items():
            for status in ("200", "202"):
                response = schema["paths"]["/jobs"]["post"]["responses"][status]
                response.setdefault("links", {})[link_name] = {
                    "operationId": operation_id,
                    "parameters": {"job_id": "$response.body#/id"},
                    "description": description,
                }
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        for name, example in examples.SCHEMA_EXAMPLES.items():
            if name in schemas:
                schemas[name]["examples"] = [example]
        components["securitySchemes"] = {
            "apiKey": {"type": "http", "scheme": "bearer", "description": "An INGEST_API_KEYS key"}
        }
        app.openapi_schema = schema
    return app.openapi_schema


def _correct_operation(operation: dict[str, Any], path: str) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    validation = responses.get("422", {}).get("content", {}).get("application/json", {})
    if validation.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
        # FastAPI's own 422 for invalid parameters: this service answers those with 400.
        del responses["422"]
        responses.setdefault("400", {"description": "Invalid parameters"})
    for status, description in CONNECTION_REFUSALS.items():
        responses.setdefault(status, {"description": description})
    for status, response in responses.items():
        if status.isdigit() and int(status) >= 400:
            response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_SCHEMA}}
            if not response.get("description"):
                response["description"] = HTTPStatus(int(status)).phrase
    for parameter in operation.get("parameters", []):
        parameter["schema"] = _never_null(parameter["schema"])
    if path.startswith("/jobs"):
        operation["security"] = [{}, {"apiKey": []}]


def _never_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter or header is left out, never sent as null."""
    branches = [branch for branch in schema.get("anyOf", []) if branch != {"type": "null"}]
    if len(branches) != 1:
        return schema
    merged = {key: value for key, value in schema.items() if key != "anyOf"}
    merged.update(copy.deepcopy(branches[0]))
    if merged.get("default", "") is None:
        del merged["default"]
    return merged


@router.get("/openapi.json")
async def openapi_document(request: Request, _owner: OwnerDep) -> JSONResponse:
    return JSONResponse(build_openapi(request.app))


@router.get("/docs")
async def openapi_page(_owner: OwnerDep) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="ingest API",
        swagger_js_url=SWAGGER_JS_URL,
        swagger_css_url=SWAGGER_CSS_URL,
        swagger_favicon_url=SWAGGER_FAVICON_URL,
    )
