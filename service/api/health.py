"""Liveness and readiness."""

from __future__ import annotations

import asyncio
import os
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field
from sqlalchemy import text

from service.api.deps import RuntimeDep
from service.storage import free_bytes

router = APIRouter(tags=["health"])


@router.get("/healthz", operation_id="healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


router.add_api_route("/healthz", healthz, methods=["HEAD"], include_in_schema=False)


class Readiness(BaseModel):
    """Each check is `ok` or `failed: <why>`."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(
        examples=[
            {"database": "ok", "data_dir": "ok", "disk": "ok", "executor": "ok", "accepting": "ok"}
        ]
    )


READINESS = {"model": Readiness}


@router.get(
    "/readyz",
    response_model=Readiness,
    operation_id="readyz",
    responses={
        200: {"description": "Every check passed"},
        503: {**READINESS, "description": "A check failed; the body names it"},
    },
)
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Ready for work: database reachable, data dir writable, disk free, executor alive."""
    settings = runtime.settings
    checks: dict[str, str] = {}
    try:
        async with runtime.sessions() as session:
            await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"failed: {type(exc).__name__}"
    writable = await asyncio.to_thread(os.access, settings.data_dir, os.W_OK)
    checks["data_dir"] = "ok" if writable else "failed: not writable"
    free = await asyncio.to_thread(free_bytes, settings.data_dir)
    checks["disk"] = "ok" if free >= settings.min_free_bytes else f"failed: {free} bytes free"
    checks["executor"] = "ok" if await runtime.executor.ready() else "failed: not running"
    checks["accepting"] = "ok" if runtime.admission.accepting else "failed: shutting down"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get(
    "/metrics",
    response_class=Response,
    operation_id="metrics",
    responses={
        200: {
            "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
            "description": "Prometheus text exposition format",
        }
    },
)
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus metrics."""
    body = await runtime.metrics.render(runtime.sessions)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
