"""Every error as RFC 9457 problem+json: the domain errors (`service.errors`), FastAPI's
validation errors (400, not 422), Starlette's HTTP errors (405 with every allowed method), and
anything unexpected (500, logged)."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from service.errors import PROBLEM_MEDIA_TYPE, ProblemError, validation_errors

logger = logging.getLogger(__name__)

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    body["detail"] = detail
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        exc.status, exc.title, exc.detail, headers=exc.headers, errors=exc.errors
    )


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc.errors())
    return problem_response(
        400, "Bad Request", "The request has invalid parameters.", errors=errors
    )


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        return _method_not_allowed(request)
    title = HTTPStatus(exc.status_code).phrase
    return problem_response(
        exc.status_code, title, str(exc.detail), headers=dict(exc.headers or {})
    )


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    routes = request.app.router.routes
    allowed = []
    for method in METHODS:
        probe = {**request.scope, "method": method}
        if any(route.matches(probe)[0] is Match.FULL for route in routes):
            allowed.append(method)
    return allowed


def _method_not_allowed(request: Request) -> JSONResponse:
    allowed = allowed_methods(request)
    method, path = request.method, request.url.path
    detail = f"{method} is not allowed on {path}; it takes {', '.join(allowed)}."
    if method == "PUT" and "POST" in allowed:
        detail += " curl -T sends PUT: add -X POST to upload with it."
    return problem_response(
        405, "Method Not Allowed", detail, headers={"Allow": ", ".join(allowed)}
    )


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", extra={"path": request.url.path})
    return problem_response(500, "Internal Server Error", "An unexpected error occurred.")


def install_error_handlers(app: FastAPI) -> None:
    """Render every error as problem+json, whatever raised it."""
    app.add_exception_handler(Exception, _on_unexpected)
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
