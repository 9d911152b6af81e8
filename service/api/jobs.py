"""Routes under /jobs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from service.api import examples
from service.api.deps import OwnerDep, RuntimeDep, runtime_of
from service.api.hand_read import (
    IDEMPOTENCY_KEY_PATTERN,
    get_job_params,
    reading_params_by_hand,
    submit_params,
)
from service.api.headers import (
    MAX_WAIT_S,
    etag_matches,
    job_headers,
    plain_seconds,
    preferred_wait,
)
from service.api.responses import CURSOR, JOB_HEADERS, PROBLEM, UPLOAD_BODY, problems
from service.formats.registry import FORMATS
from service.jobs import control, reading, results
from service.jobs.negotiation import negotiate
from service.jobs.results import Download
from service.models import JobPage, JobPublic, JobStatus, RowErrorPage
from service.upload import submit as submission
from service.upload.submit import MAX_IDEMPOTENCY_KEY_CHARS, SubmitQuery

router = APIRouter(prefix="/jobs", tags=["jobs"])


async def submit_job(
    request: Request,
    owner: OwnerDep,
    query: Annotated[SubmitQuery, Query()],
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=MAX_IDEMPOTENCY_KEY_CHARS,
            pattern=IDEMPOTENCY_KEY_PATTERN,
            description="Retry safely: the same key and content return the job (200)",
            examples=["orders-2026-11-24"],
        ),
    ] = None,
    repr_digest: Annotated[
        str | None,
        Header(
            description="`sha-256=:<base64>:` of the body as sent (for multipart, the whole "
            "multipart body; RFC 9530); a mismatch is 400 and nothing is kept",
            examples=["sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"],
        ),
    ] = None,
    content_digest: Annotated[
        str | None,
        Header(
            description="`sha-256=:<base64>:` of the body as sent (RFC 9530); a mismatch is 400 "
            "and nothing is kept",
            examples=["sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"],
        ),
    ] = None,
    prefer: Annotated[
        str | None,
        Header(
            description="`wait=N` (N ≤ 30): answer once the job is done, or after N seconds",
            examples=["wait=10"],
        ),
    ] = None,
) -> Response:
    """Upload a file (multipart field `file`, or the raw body) and start a job that parses it."""
    runtime = runtime_of(request)
    wait = preferred_wait(prefer)
    submitted = await submission.submit(request, runtime, owner, query, start=wait is not None)
    background = None
    if submitted.created and wait is None:
        background = BackgroundTask(submission.dispatch, runtime, submitted.job.id)
    job = await submission.answer(runtime, submitted, owner, wait)
    headers = {"Location": f"/jobs/{job.id}", **job_headers(job)}
    if wait is not None:
        headers["Preference-Applied"] = f"wait={plain_seconds(wait)}"
    return Response(
        job.model_dump_json(),
        status_code=200 if job.done or not submitted.created else 202,
        media_type="application/json",
        headers=headers,
        background=background,
    )


router.add_api_route(
    "",
    submit_job,
    methods=["POST"],
    status_code=202,
    response_model=JobPublic,
    operation_id="submitJob",
    responses={
        202: {
            "description": "Accepted: the file and the job are on disk; the job is queued",
            "headers": {"Location": {"description": "/jobs/{id}"}, **JOB_HEADERS},
        },
        200: {
            "model": JobPublic,
            "description": "Finished within `Prefer: wait` (with `Preference-Applied`), or a "
            "retry with the same Idempotency-Key and upload",
            "headers": {
                "Preference-Applied": {"description": "wait=N, the seconds waited at most"},
                **JOB_HEADERS,
            },
        },
        400: {**PROBLEM, "description": "No file, two files, a bad option or a digest mismatch"},
        408: {**PROBLEM, "description": "Nothing arrived for INGEST_CLIENT_TIMEOUT_S mid-body"},
        409: {**PROBLEM, "description": "This Idempotency-Key's first upload is still arriving"},
        413: {**PROBLEM, "description": "Larger than INGEST_MAX_UPLOAD_BYTES"},
        415: {**PROBLEM, "description": "A media type or content coding not taken"},
        422: {**PROBLEM, "description": "This Idempotency-Key was used for a different upload"},
        503: {**PROBLEM, "description": "The queue is full, or the service is stopping"},
        507: {**PROBLEM, "description": "Free disk would fall below INGEST_MIN_FREE_BYTES"},
        **problems(401),
    },
    openapi_extra=UPLOAD_BODY,
    # The route clients upload to reads its parameters itself (see hand_read); what it
    # declares here makes the OpenAPI document.
    route_class_override=reading_params_by_hand(submit_params),
)


@router.get("", response_model=JobPage, operation_id="listJobs", responses=problems(400, 401))
async def list_jobs(
    runtime: RuntimeDep,
    owner: OwnerDep,
    status: JobStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, CURSOR] = None,
) -> JobPage:
    """List jobs, newest first; follow `next` for the following page."""
    return await reading.job_page(runtime, owner, status, limit, cursor)


async def get_job(
    job_id: str,
    request: Request,
    owner: OwnerDep,
    if_none_match: Annotated[str | None, Header(description="ETags you already have")] = None,
    wait: Annotated[
        float, Query(ge=0, le=MAX_WAIT_S, description="Long-poll: seconds to wait for a change")
    ] = 0,
) -> Response:
    """A job's status, progress and result summary; `?wait=N` returns as soon as it changes."""
    runtime = runtime_of(request)
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


# The route clients poll reads its parameters itself (see hand_read).
POLL_ROUTE = reading_params_by_hand(get_job_params)
router.add_api_route(
    "/{job_id}",
    get_job,
    methods=["GET"],
    response_model=JobPublic,
    operation_id="getJob",
    responses={
        200: {"headers": JOB_HEADERS},
        304: {"description": "Not modified (If-None-Match)"},
        **problems(400, 401, 404),
    },
    route_class_override=POLL_ROUTE,
)
router.add_api_route(
    "/{job_id}",
    get_job,
    methods=["HEAD"],
    include_in_schema=False,
    route_class_override=POLL_ROUTE,
)


@router.post(
    "/{job_id}/cancel",
    response_model=JobPublic,
    operation_id="cancelJob",
    responses={
        409: {**PROBLEM, "description": "The job has already finished"},
        **problems(401, 404),
    },
)
async def cancel_job(job_id: str, runtime: RuntimeDep, owner: OwnerDep) -> JobPublic:
    """Cancel a queued or running job (a running parse stops within a second)."""
    return await control.cancel(runtime, job_id, owner)


@router.delete(
    "/{job_id}",
    status_code=204,
    operation_id="deleteJob",
    responses={204: {"description": "Deleted"}, **problems(401, 404)},
)
async def delete_job(job_id: str, runtime: RuntimeDep, owner: OwnerDep) -> Response:
    """Cancel the job if needed, then remove it, its upload and its result."""
    await control.delete(runtime, job_id, owner)
    return Response(status_code=204)


RESULT_EXAMPLES: dict[str, object] = {
    "ndjson": examples.RESULT_NDJSON,
    "json": json.loads(examples.RESULT_JSON),
    "csv": examples.RESULT_CSV,
}
# JSON is one array of records; the other formats are text or bytes to the schema.
RESULT_SCHEMAS = {"json": {"type": "array", "items": {"type": "object"}}}
RESULT_CONTENT = {
    fmt.media_type: (
        {
            "schema": RESULT_SCHEMAS.get(fmt.name, {"type": "string"}),
            "example": RESULT_EXAMPLES[fmt.name],
        }
        if fmt.name in RESULT_EXAMPLES
        else {"schema": {"type": "string", "format": "binary"}}
    )
    for fmt in FORMATS.values()
}
# A HEAD answer names the media type of the body it leaves out.
HEAD_CONTENT: dict[str, dict[str, object]] = {
    fmt.media_type: {"schema": {}} for fmt in FORMATS.values()
}
DOWNLOAD_HEADERS = {
    "Content-Disposition": {"description": "attachment; filename=<uploaded name>.<extension>"},
    "ETag": {"description": "One per job and format; send it back in If-Range"},
    "Accept-Ranges": {"description": "bytes"},
}


ResultFormatQuery = Annotated[
    str | None,
    Query(
        pattern=f"^({'|'.join(FORMATS)})$",
        description="ndjson, json, csv, parquet or arrow; wins over Accept",
    ),
]
RangeHeader = Annotated[
    str | None, Header(description="`bytes=N-` resumes a download (`curl -C -`)")
]
IfRangeHeader = Annotated[
    str | None, Header(description="The ETag: the range only if the file is still it")
]
RESULT_PROBLEMS = {
    406: {**PROBLEM, "description": "Accept admits none of the formats (they are listed)"},
    409: {**PROBLEM, "description": "The job has not succeeded (yet)"},
    416: {**PROBLEM, "description": "The range starts past the end of the file"},
    507: {**PROBLEM, "description": "The disk is full: the conversion could not be kept"},
    **problems(400, 401, 404),
}


async def _open_download(
    job_id: str,
    runtime: RuntimeDep,
    owner: OwnerDep,
    format: ResultFormatQuery = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
    range: RangeHeader = None,
    if_range: IfRangeHeader = None,
) -> Download:
    """The result download a GET or HEAD asks for (`?format=` wins over `Accept`)."""
    fmt = negotiate(accept, format)
    return await results.open_download(runtime, job_id, owner, fmt, range, if_range)


DownloadDep = Annotated[Download, Depends(_open_download)]


def _download_responses(
    content: Mapping[str, object], *, whole: str, partial: str
) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI responses of a result download: the whole file, a range of it, problems."""
    return {
        200: {"content": content, "description": whole, "headers": DOWNLOAD_HEADERS},
        206: {
            "content": content,
            "description": partial,
            "headers": {**DOWNLOAD_HEADERS, "Content-Range": {"description": "bytes a-b/size"}},
        },
        **RESULT_PROBLEMS,
    }


@router.get(
    "/{job_id}/result",
    response_class=StreamingResponse,
    operation_id="getResult",
    responses=_download_responses(
        RESULT_CONTENT,
        whole="The records in the format asked for (NDJSON by default); a format other than "
        "NDJSON is converted on the first request for it, which waits",
        partial="The bytes a Range header asked for",
    ),
)
async def get_result(download: DownloadDep) -> StreamingResponse:
    """The records as NDJSON, JSON, CSV, Parquet or an Arrow stream, from disk, resumable."""
    return StreamingResponse(
        download.chunks(),
        status_code=206 if download.partial else 200,
        media_type=download.format.media_type,
        headers=download.headers,
    )


@router.head(
    "/{job_id}/result",
    operation_id="headResult",
    responses=_download_responses(
        HEAD_CONTENT,
        whole="The download's headers without its body (a format not converted yet is "
        "converted first, as for GET)",
        partial="The headers of the bytes a Range header asked for",
    ),
)
async def head_result(download: DownloadDep) -> Response:
    """What GET would send (size, ETag, file name, range), without the body."""
    await download.close()
    return Response(
        status_code=206 if download.partial else 200,
        media_type=download.format.media_type,
        headers=download.headers,
    )


@router.get(
    "/{job_id}/errors",
    response_model=RowErrorPage,
    operation_id="getRowErrors",
    responses=problems(400, 401, 404),
)
async def get_row_errors(
    job_id: str,
    runtime: RuntimeDep,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, CURSOR] = None,
) -> RowErrorPage:
    """Row-level errors in file order (the first INGEST_MAX_ERRORS_STORED are kept)."""
    return await reading.row_error_page(runtime, job_id, owner, limit, cursor)
