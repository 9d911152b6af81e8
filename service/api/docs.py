"""The OpenAPI document and its page, behind the API key like every other endpoint."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse

from service.api.deps import OwnerDep
from service.web import SWAGGER_CSS_URL, SWAGGER_FAVICON_URL, SWAGGER_JS_URL

router = APIRouter(include_in_schema=False)

BAD_REQUEST = {
    "description": "Invalid parameters",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, corrected to what the service does.

    Invalid parameters are answered with 400 problem+json, not FastAPI's 422, and the job
    endpoints take a bearer API key when INGEST_API_KEYS is set.
    """
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        for path, operations in schema["paths"].items():
            for operation in operations.values():
                responses = operation.get("responses", {})
                if responses.pop("422", None) is not None:
                    responses.setdefault("400", BAD_REQUEST)
                if path.startswith("/jobs"):
                    operation["security"] = [{}, {"apiKey": []}]
        components = schema.setdefault("components", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            components.get("schemas", {}).pop(unused, None)
        components["securitySchemes"] = {
            "apiKey": {"type": "http", "scheme": "bearer", "description": "An INGEST_API_KEYS key"}
        }
        app.openapi_schema = schema
    return app.openapi_schema


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
