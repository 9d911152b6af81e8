"""Domain errors that carry their HTTP status; `service.api.problems` renders them as RFC
9457 problem+json. Plain Python: the layers below the HTTP edge raise them without loading a
web framework."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ProblemError(Exception):
    """An error a client can do something about; `status` is its HTTP status."""

    status: int = 400
    title: str = "Bad Request"

    def __init__(
        self,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.errors = errors


class BadRequest(ProblemError):
    status, title = 400, "Bad Request"


class Unauthorized(ProblemError):
    status, title = 401, "Unauthorized"


class NotFound(ProblemError):
    status, title = 404, "Not Found"


class MethodNotAllowed(ProblemError):
    status, title = 405, "Method Not Allowed"


class RequestTimeout(ProblemError):
    status, title = 408, "Request Timeout"


class NotAcceptable(ProblemError):
    status, title = 406, "Not Acceptable"


class Conflict(ProblemError):
    status, title = 409, "Conflict"


class LengthRequired(ProblemError):
    status, title = 411, "Length Required"


class PayloadTooLarge(ProblemError):
    status, title = 413, "Content Too Large"


class UnsupportedMediaType(ProblemError):
    status, title = 415, "Unsupported Media Type"


class RangeNotSatisfiable(ProblemError):
    status, title = 416, "Range Not Satisfiable"


class UnprocessableContent(ProblemError):
    status, title = 422, "Unprocessable Content"


class ServiceUnavailable(ProblemError):
    status, title = 503, "Service Unavailable"


class InsufficientStorage(ProblemError):
    status, title = 507, "Insufficient Storage"


def validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic's error list as the `errors` member of a problem document."""
    return [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in errors
    ]
