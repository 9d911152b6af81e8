"""Routes under /jobs."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from service import control, reading, submission
from service.api.deps import OwnerDep, RuntimeDep
from service.intake import RAW_MEDIA_TYPES
from service.models import JobPage, JobPublic, JobStatus, Problem, RowErrorPage
from service.submission import SubmitQuery
from service.watch import etag_of

router = APIRouter(prefix="/jobs", tags=["jobs"])

MAX_WAIT_S = 30

PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}
JOB_HEADERS = {
    "ETag": {"description": "Version of the job; send it back in If-None-Match"},
    "Retry-After": {"description": "1, while the job is not finished"},
}


def _problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: PROBLEM for status in statuses}


UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
            **{
                media_type: {"schema": {"type": "string", "format": "binary"}}
                for media_type in sorted(RAW_MEDIA_TYPES)
            },
        },
    }
}


def preferred_wait(prefer: str | None) -> float | None:
    """The `wait` preference of a `Prefer` header (RFC 7240) in seconds: capped at MAX_WAIT_S,
    to the millisecond."""
    for preference in (prefer or "").split(","):
        name, _, value = preference.strip().partition("=")
        if name.strip().lower() == "wait":
            try:
                seconds = float(value.strip().strip('"'))
            except ValueError:
                return None
            if not math.isfinite(seconds):
                return None
            return round(min(max(seconds, 0.0), MAX_WAIT_S), 3)
    return None


def plain_seconds(seconds: float) -> str:
    """`2.5`, `10`, `0`: a number of seconds as people write it, never in exponent form."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: `*`, or a list of (possibly weak) entity tags."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    tags = (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
    return etag in tags


def job_headers(job: JobPublic) -> dict[str, str]:
    headers = {"ETag": etag_of(job)}
    if not job.done:
        headers["Retry-After"] = "1"
    return headers


@router.post(
    "",
    status_code=202,
    response_model=JobPublic,
    responses={
        202: {"headers": {"Location": {"description": "/jobs/{id}"}, **JOB_HEADERS}},
        200: {"model": JobPublic, "description": "Finished within `Prefer: wait`, or a retry"},
        **_problems(400, 401, 409, 413, 415, 422, 503, 507),
    },
    openapi_extra=UPLOAD_BODY,
)
async def submit_job(
    request: Request,
    response: Response,
    background: BackgroundTasks,
    runtime: RuntimeDep,
    owner: OwnerDep,
    query: Annotated[SubmitQuery, Query()],
    idempotency_key: Annotated[
        str | None, Header(description="Retry safely: the same key and content return the job")
    ] = None,
    repr_digest: Annotated[str | None, Header(description="sha-256=:<base64>: of the body")] = None,
    content_digest: Annotated[
        str | None, Header(description="sha-256=:<base64>: of the body")
    ] = None,
    prefer: Annotated[
        str | None, Header(description="wait=N (N ≤ 30): answer once the job is done")
    ] = None,
) -> JobPublic:
    """Upload a file (multipart field `file`, or the raw body) and start a job that parses it."""
    submitted = await submission.submit(request, runtime, owner, query)
    wait = preferred_wait(prefer)
    if submitted.created and wait is None:
        background.add_task(submission.dispatch, runtime, submitted.job.id)
    job = await submission.start(runtime, submitted, owner, wait)
    if wait is not None:
        response.headers["Preference-Applied"] = f"wait={plain_seconds(wait)}"
    response.status_code = 200 if job.done or not submitted.created else 202
    response.headers["Location"] = f"/jobs/{job.id}"
    response.headers.update(job_headers(job))
    return job


@router.get("", response_model=JobPage, responses=_problems(400, 401))
async def list_jobs(
    runtime: RuntimeDep,
    owner: OwnerDep,
    status: JobStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> JobPage:
    """List jobs, newest first; follow `next` for the following page."""
    return await reading.job_page(runtime, owner, status, limit, cursor)


@router.get(
    "/{job_id}",
    response_model=JobPublic,
    responses={
        200: {"headers": JOB_HEADERS},
        304: {"description": "Not modified (If-None-Match)"},
        **_problems(400, 401, 404),
    },
)
async def get_job(
    job_id: str,
    runtime: RuntimeDep,
    owner: OwnerDep,
    if_none_match: Annotated[str | None, Header(description="ETags you already have")] = None,
    wait: Annotated[
        float, Query(ge=0, le=MAX_WAIT_S, description="Long-poll: seconds to wait for a change")
    ] = 0,
) -> Response:
    """A job's status, progress and result summary; `?wait=N` returns as soon as it changes."""
    snapshot = await runtime.views.get(job_id, owner)
    if wait > 0 and (not if_none_match or etag_matches(if_none_match, snapshot.etag)):
        snapshot = await runtime.views.next_version(
            job_id, owner, since=snapshot.etag, timeout=wait
        )
    headers = job_headers(snapshot.job)
    if etag_matches(if_none_match, snapshot.etag):
        return Response(status_code=304, headers=headers)
    # The snapshot's JSON is rendered once and served to every poll while it is fresh.
    return Response(snapshot.body, media_type="application/json", headers=headers)


router.add_api_route("/{job_id}", get_job, methods=["HEAD"], include_in_schema=False)


@router.post("/{job_id}/cancel", response_model=JobPublic, responses=_problems(401, 404, 409))
async def cancel_job(job_id: str, runtime: RuntimeDep, owner: OwnerDep) -> JobPublic:
    """Cancel a queued or running job (a running parse stops within a second)."""
    return await control.cancel(runtime, job_id, owner)


@router.delete("/{job_id}", status_code=204, responses=_problems(401, 404))
async def delete_job(job_id: str, runtime: RuntimeDep, owner: OwnerDep) -> Response:
    """Cancel the job if needed, then remove it, its upload and its result."""
    await control.delete(runtime, job_id, owner)
    return Response(status_code=204)


@router.get(
    "/{job_id}/result",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/x-ndjson": {}}, "description": "The records, one a line"},
        **_problems(401, 404, 409),
    },
)
async def get_result(job_id: str, runtime: RuntimeDep, owner: OwnerDep) -> StreamingResponse:
    """The parsed records as NDJSON, streamed from disk."""
    result = await reading.open_result(runtime, job_id, owner)
    return StreamingResponse(
        result.chunks(),
        media_type="application/x-ndjson",
        headers={
            "Content-Length": str(result.size),
            "Content-Disposition": f'attachment; filename="{job_id}.ndjson"',
        },
    )


@router.get("/{job_id}/errors", response_model=RowErrorPage, responses=_problems(400, 401, 404))
async def get_row_errors(
    job_id: str,
    runtime: RuntimeDep,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> RowErrorPage:
    """Row-level errors in file order (the first INGEST_MAX_ERRORS_STORED are kept)."""
    return await reading.row_error_page(runtime, job_id, owner, limit, cursor)
