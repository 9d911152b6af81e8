"""Routes under /jobs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Header, Query, Request, Response
from fastapi.responses import FileResponse

from service import control, jobs, submission
from service.api.deps import OwnerDep, RuntimeDep
from service.errors import Conflict
from service.intake import RAW_MEDIA_TYPES
from service.models import JobPage, JobPublic, JobStatus, Problem, RowErrorPage
from service.storage import job_paths
from service.submission import SubmitQuery
from service.watch import etag_of

router = APIRouter(prefix="/jobs", tags=["jobs"])

MAX_WAIT_S = 30

PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}


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
    """The `wait` preference of a `Prefer` header (RFC 7240), capped at MAX_WAIT_S."""
    if not prefer:
        return None
    for preference in prefer.split(","):
        name, _, value = preference.strip().partition("=")
        if name.strip().lower() == "wait":
            try:
                seconds = float(value.strip().strip('"'))
            except ValueError:
                return None
            return min(max(seconds, 0.0), MAX_WAIT_S)
    return None


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
    job = JobPublic.from_job(submitted.job)
    wait = preferred_wait(prefer)
    if submitted.created:
        if wait is None:
            background.add_task(runtime.executor.submit, job.id)
        else:
            await runtime.executor.submit(job.id)
    if wait is not None:
        finished = await runtime.views.next_version(
            job.id, owner, since=None, timeout=wait, until_done=True
        )
        job = finished.job
        response.headers["Preference-Applied"] = f"wait={wait:g}"
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
    async with runtime.sessions() as session:
        page, next_cursor = await jobs.list_jobs(
            session, owner=owner, status=status, limit=limit, cursor=cursor
        )
    next_link = None
    if next_cursor:
        status_part = f"status={status.value}&" if status else ""
        next_link = f"/jobs?{status_part}limit={limit}&cursor={next_cursor}"
    return JobPage(items=[JobPublic.from_job(job) for job in page], next=next_link)


@router.get(
    "/{job_id}",
    response_model=JobPublic,
    responses={304: {"description": "Not modified (If-None-Match)"}, **_problems(400, 401, 404)},
)
async def get_job(
    job_id: str,
    request: Request,
    runtime: RuntimeDep,
    owner: OwnerDep,
    wait: Annotated[
        float, Query(ge=0, le=MAX_WAIT_S, description="Long-poll: seconds to wait for a change")
    ] = 0,
) -> Response:
    """A job's status, progress and result summary; `?wait=N` returns as soon as it changes."""
    since = request.headers.get("if-none-match")
    snapshot = await runtime.views.get(job_id, owner)
    if wait > 0:
        snapshot = await runtime.views.next_version(
            job_id, owner, since=since or snapshot.etag, timeout=wait
        )
    headers = job_headers(snapshot.job)
    if since == snapshot.etag:
        return Response(status_code=304, headers=headers)
    # The snapshot's JSON is rendered once and served to every poll while it is fresh.
    return Response(snapshot.body, media_type="application/json", headers=headers)


@router.post(
    "/{job_id}/cancel",
    response_model=JobPublic,
    responses=_problems(401, 404, 409),
)
async def cancel_job(job_id: str, runtime: RuntimeDep, owner: OwnerDep) -> JobPublic:
    """Cancel a queued or running job (a running parse stops within a second)."""
    job = await control.cancel(runtime, job_id, owner)
    return job


@router.delete("/{job_id}", status_code=204, responses=_problems(401, 404))
async def delete_job(job_id: str, runtime: RuntimeDep, owner: OwnerDep) -> Response:
    """Cancel the job if needed, then remove it, its upload and its result."""
    await control.delete(runtime, job_id, owner)
    return Response(status_code=204)


@router.get(
    "/{job_id}/result",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/x-ndjson": {}}, "description": "The records, one a line"},
        **_problems(401, 404, 409),
    },
)
async def get_result(job_id: str, runtime: RuntimeDep, owner: OwnerDep) -> FileResponse:
    """The parsed records as NDJSON, streamed from disk."""
    async with runtime.sessions() as session:
        job = await jobs.find_job(session, job_id, owner)
    if job.status is not JobStatus.succeeded:
        raise Conflict(f"The job is {job.status.value}; the result exists once it has succeeded.")
    path = job_paths(runtime.settings.data_dir, job.id).result
    return FileResponse(path, media_type="application/x-ndjson", filename=f"{job.id}.ndjson")


@router.get("/{job_id}/errors", response_model=RowErrorPage, responses=_problems(400, 401, 404))
async def get_row_errors(
    job_id: str,
    runtime: RuntimeDep,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> RowErrorPage:
    """Row-level errors in file order (the first INGEST_MAX_ERRORS_STORED are kept)."""
    async with runtime.sessions() as session:
        job = await jobs.find_job(session, job_id, owner)
    path = job_paths(runtime.settings.data_dir, job.id).errors
    items, next_cursor = await jobs.read_row_errors(path, limit=limit, cursor=cursor)
    return RowErrorPage(
        total=job.rows_failed,
        stored=min(job.rows_failed, runtime.settings.max_errors_stored),
        items=items,
        next=f"/jobs/{job.id}/errors?limit={limit}&cursor={next_cursor}" if next_cursor else None,
    )
