"""The web page at `/`: static files from this package, calling the public HTTP API.

The page and its assets load without an API key; the API calls it makes send one. The
Swagger UI assets of `/docs` are served from the `fastapi-offline` package, so no page of
the service needs a CDN.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
SWAGGER_UI_DIR = Path(str(files("fastapi_offline") / "static"))

STATIC_PREFIX = "/static"
SWAGGER_UI_PREFIX = f"{STATIC_PREFIX}/swagger-ui"
SWAGGER_JS_URL = f"{SWAGGER_UI_PREFIX}/swagger-ui-bundle.js"
SWAGGER_CSS_URL = f"{SWAGGER_UI_PREFIX}/swagger-ui.css"
SWAGGER_FAVICON_URL = f"{SWAGGER_UI_PREFIX}/favicon.png"

# The page talks to this origin only; the browser refuses anything else it might be led to load.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
}

router = APIRouter(include_in_schema=False)


class RevalidatedFiles(StaticFiles):
    """Static files the browser checks before each use (a 304 while unchanged), so a page
    never mixes modules of two versions of the service."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


@router.get("/")
async def web_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)


# The more specific mount first: routes are matched in order.
router.mount(SWAGGER_UI_PREFIX, RevalidatedFiles(directory=SWAGGER_UI_DIR), name="swagger-ui")
router.mount(STATIC_PREFIX, RevalidatedFiles(directory=STATIC_DIR), name="static")
