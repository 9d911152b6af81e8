"""Routes whose parameters are read by hand, with the errors FastAPI would give for them.

FastAPI solves a route's declared parameters on every request, and validates what the endpoint
returns against its response model. For an upload of 1 KB that was a sixth of the API
process's CPU (py-spy: `solve_dependencies` 15%, the response model 2%), and a poll spends a
larger share there. The two routes clients call most, `POST /jobs` and `GET /jobs/{id}`, keep
their declarations, from which the OpenAPI document is made, and read the same parameters
here: the caller first (401 before any parameter is checked), then the query and the headers,
every error in one 400, as FastAPI reports them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import Field, TypeAdapter, ValidationError
from starlette.datastructures import QueryParams

from service.api.deps import get_owner
from service.api.headers import MAX_WAIT_S
from service.upload.submit import MAX_IDEMPOTENCY_KEY_CHARS, SubmitQuery

ParamsReader = Callable[[Request], Awaitable[dict[str, Any]]]

# The Idempotency-Key header's rule, as the endpoint declares it for the OpenAPI document.
IDEMPOTENCY_KEY_PATTERN = r'[^\s"]'
_IDEMPOTENCY_KEY = TypeAdapter(
    Annotated[str, Field(max_length=MAX_IDEMPOTENCY_KEY_CHARS, pattern=IDEMPOTENCY_KEY_PATTERN)]
)
# The long poll's `wait`, as `GET /jobs/{id}` declares it.
_WAIT = TypeAdapter(Annotated[float, Field(ge=0, le=MAX_WAIT_S)])


def reading_params_by_hand(read: ParamsReader) -> type[APIRoute]:
    """A route class whose endpoint is called with what `read` returns, and answers with the
    Response the endpoint returns."""

    class HandReadRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            endpoint = self.endpoint

            async def handler(request: Request) -> Response:
                response = await endpoint(**await read(request))
                assert isinstance(response, Response)
                return response

            return handler

    return HandReadRoute


def _query_values(params: QueryParams) -> dict[str, Any]:
    """What FastAPI hands a query model: a field's last value; any other name with its value,
    or its values if repeated (the model forbids other names)."""
    values: dict[str, Any] = {}
    for name, value in params.multi_items():
        if name in SubmitQuery.model_fields:
            values[name] = value
        elif name in values:
            earlier = values[name]
            values[name] = [*earlier, value] if isinstance(earlier, list) else [earlier, value]
        else:
            values[name] = value
    return values


def _located(where: str, exc: ValidationError, name: str | None = None) -> list[dict[str, Any]]:
    prefix = (where,) if name is None else (where, name)
    return [{**error, "loc": (*prefix, *error["loc"])} for error in exc.errors()]


async def submit_params(request: Request) -> dict[str, Any]:
    """The arguments of `POST /jobs`'s endpoint, read from the request."""
    owner = await get_owner(request)
    errors: list[dict[str, Any]] = []
    query = None
    try:
        query = SubmitQuery.model_validate(_query_values(request.query_params))
    except ValidationError as exc:
        errors.extend(_located("query", exc))
    headers = request.headers
    idempotency_key = headers.get("idempotency-key")
    if idempotency_key is not None:
        try:
            _IDEMPOTENCY_KEY.validate_python(idempotency_key)
        except ValidationError as exc:
            errors.extend(_located("header", exc, "idempotency-key"))
    if errors:
        raise RequestValidationError(errors)
    return {
        "request": request,
        "owner": owner,
        "query": query,
        "idempotency_key": idempotency_key,
        "repr_digest": headers.get("repr-digest"),
        "content_digest": headers.get("content-digest"),
        "prefer": headers.get("prefer"),
    }


async def get_job_params(request: Request) -> dict[str, Any]:
    """The arguments of `GET /jobs/{id}`'s endpoint, read from the request."""
    owner = await get_owner(request)
    wait = 0.0
    given = request.query_params.get("wait")
    if given is not None:
        try:
            wait = _WAIT.validate_python(given)
        except ValidationError as exc:
            raise RequestValidationError(_located("query", exc, "wait")) from None
    return {
        "job_id": request.path_params["job_id"],
        "request": request,
        "owner": owner,
        "if_none_match": request.headers.get("if-none-match"),
        "wait": wait,
    }
