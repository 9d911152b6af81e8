"""Routes under /uploads: resumable uploads, tus 1.0.0 (core, creation, creation-with-upload,
creation-defer-length, termination, checksum, expiration). A finished upload becomes a job,
linked from its responses with `Link: </jobs/{id}>; rel="job"`."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from service.api.deps import OwnerDep, RuntimeDep
from service.api.responses import PROBLEM, problems
from service.errors import BadRequest, ProblemError, UnsupportedMediaType, validation_errors
from service.storage import ResumableState
from service.upload import submit
from service.upload.request import declared_length, media_type_of
from service.upload.resumable import Outcome, ResumableUploads
from service.upload.tus import (
    CHECKSUM_ALGORITHMS,
    EXTENSIONS,
    MAX_METADATA_CHARS,
    NON_NEGATIVE,
    OFFSET_OCTET_STREAM,
    TUS_VERSION,
    check_version,
    describe,
    http_date,
    parse_checksum,
    parse_metadata,
)


class TusRoute(APIRoute):
    """A route that speaks tus: 412 before anything else for another protocol version (but on
    OPTIONS), and `Tus-Resumable` on every response, errors included."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        checks_version = "OPTIONS" not in (self.methods or ())

        async def tus_handler(request: Request) -> Response:
            try:
                if checks_version:
                    check_version(request.headers.get("tus-resumable"))
                response = await handler(request)
            except ProblemError as refused:
                refused.headers.setdefault("Tus-Resumable", TUS_VERSION)
                raise
            except RequestValidationError as invalid:
                raise BadRequest(
                    "The request has invalid parameters.",
                    errors=validation_errors(invalid.errors()),
                    headers={"Tus-Resumable": TUS_VERSION},
                ) from None
            response.headers["Tus-Resumable"] = TUS_VERSION
            return response

        return tus_handler


router = APIRouter(
    prefix="/uploads", tags=["uploads"], route_class=TusRoute, default_response_class=Response
)


async def get_uploads(request: Request, runtime: RuntimeDep) -> ResumableUploads:
    """The app's resumable uploads, made with its runtime (afresh after a restart)."""
    uploads = getattr(request.app.state, "resumable_uploads", None)
    if not isinstance(uploads, ResumableUploads) or uploads.runtime is not runtime:
        uploads = ResumableUploads(runtime)
        request.app.state.resumable_uploads = uploads
    return uploads


UploadsDep = Annotated[ResumableUploads, Depends(get_uploads)]
TusResumable = Annotated[
    str,
    Header(
        pattern=r"^1\.0\.0$",
        description="The tus version the client speaks: 1.0.0 (else 412)",
        examples=[TUS_VERSION],
    ),
]
UploadLength = Annotated[
    str | None,
    Header(
        pattern=NON_NEGATIVE,
        description="The whole upload's size in bytes",
        examples=["104857600"],
    ),
]
UploadChecksum = Annotated[
    str | None,
    Header(
        max_length=200,
        description="`<algorithm> <base64 digest>` of this request's body: "
        f"{', '.join(CHECKSUM_ALGORITHMS)}; a mismatch is 460 and the body is not kept",
        examples=["sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0="],
    ),
]

TUS_RESUMABLE_HEADER = {"Tus-Resumable": {"description": "1.0.0", "schema": {"type": "string"}}}
OFFSET_HEADER = {
    "Upload-Offset": {"description": "Bytes stored so far", "schema": {"type": "string"}}
}
EXPIRES_HEADER = {
    "Upload-Expires": {
        "description": "When the unfinished upload will be removed (RFC 9110 date); renewed by "
        "every PATCH",
        "schema": {"type": "string"},
    }
}
LINK_HEADER = {
    "Link": {
        "description": '`</jobs/{id}>; rel="job"`: the job made from the finished upload',
        "schema": {"type": "string"},
    }
}
OFFSET_BODY: dict[str, Any] = {
    OFFSET_OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}},
}
TUS_PROBLEMS: dict[int | str, dict[str, Any]] = {
    412: {**PROBLEM, "description": "Tus-Resumable is not 1.0.0 (the answer has Tus-Version)"},
    **problems(400, 401),
}
SECURITY: dict[str, Any] = {"security": [{}, {"apiKey": []}]}


def upload_headers(state: ResumableState) -> dict[str, str]:
    """The offset, and either the expiry (unfinished) or the link to the job (finished)."""
    headers = {"Upload-Offset": str(state.offset)}
    if state.completed:
        headers["Link"] = f'</jobs/{state.job_id}>; rel="job"'
    else:
        headers["Upload-Expires"] = http_date(state.expires_at)
    return headers


def _dispatch_new_job(
    outcome: Outcome, background: BackgroundTasks, uploads: ResumableUploads
) -> None:
    if outcome.job_made:
        background.add_task(submit.dispatch, uploads.runtime, outcome.state.job_id)


def _number(value: str | None) -> int | None:
    return None if value is None else int(value)


def _creation_length(upload_length: str | None, upload_defer_length: str | None) -> int | None:
    if upload_length is not None and upload_defer_length is not None:
        raise BadRequest("Send Upload-Length or Upload-Defer-Length: 1, not both.")
    if upload_length is None and upload_defer_length is None:
        raise BadRequest("Send Upload-Length, or Upload-Defer-Length: 1 if it is not known yet.")
    return _number(upload_length)


def _has_body(request: Request) -> bool:
    return bool(declared_length(request)) or "transfer-encoding" in request.headers


@router.options(
    "",
    status_code=204,
    operation_id="uploadOptions",
    responses={
        204: {
            "description": "What this server supports",
            "headers": {
                "Tus-Version": {"description": "1.0.0", "schema": {"type": "string"}},
                "Tus-Extension": {"description": "Extensions", "schema": {"type": "string"}},
                "Tus-Max-Size": {
                    "description": "INGEST_MAX_UPLOAD_BYTES",
                    "schema": {"type": "string"},
                },
                "Tus-Checksum-Algorithm": {
                    "description": "Upload-Checksum algorithms",
                    "schema": {"type": "string"},
                },
                **TUS_RESUMABLE_HEADER,
            },
        },
        **problems(401),
    },
    openapi_extra=SECURITY,
)
async def upload_options(runtime: RuntimeDep, _owner: OwnerDep) -> Response:
    """The tus versions, extensions, size limit and checksum algorithms of this server."""
    headers = {
        "Tus-Version": TUS_VERSION,
        "Tus-Extension": ",".join(EXTENSIONS),
        "Tus-Max-Size": str(runtime.settings.max_upload_bytes),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
    }
    return Response(status_code=204, headers=headers)


@router.post(
    "",
    status_code=201,
    operation_id="createUpload",
    responses={
        201: {
            "description": "Created: `Location` names the upload; with a body "
            "(creation-with-upload) `Upload-Offset` says how much of it was stored",
            "headers": {
                "Location": {"description": "/uploads/{id}", "schema": {"type": "string"}},
                **OFFSET_HEADER,
                **EXPIRES_HEADER,
                **LINK_HEADER,
                **TUS_RESUMABLE_HEADER,
            },
        },
        408: {**PROBLEM, "description": "Nothing arrived for INGEST_CLIENT_TIMEOUT_S mid-body"},
        413: {**PROBLEM, "description": "Upload-Length is over INGEST_MAX_UPLOAD_BYTES"},
        415: {**PROBLEM, "description": "A body that is not application/offset+octet-stream"},
        460: {**PROBLEM, "description": "The body does not match its Upload-Checksum"},
        503: {**PROBLEM, "description": "The queue is full, or the service is stopping"},
        507: {**PROBLEM, "description": "Free disk would fall below INGEST_MIN_FREE_BYTES"},
        **TUS_PROBLEMS,
    },
    openapi_extra={
        "requestBody": {
            "required": False,
            "description": "The first bytes of the file (creation-with-upload), if any",
            "content": OFFSET_BODY,
        },
        **SECURITY,
    },
)
async def create_upload(
    request: Request,
    background: BackgroundTasks,
    uploads: UploadsDep,
    owner: OwnerDep,
    tus_resumable: TusResumable,
    upload_length: UploadLength = None,
    upload_defer_length: Annotated[
        str | None,
        Header(pattern=r"^1$", description="`1`: the length will come with a later PATCH"),
    ] = None,
    upload_metadata: Annotated[
        str | None,
        Header(
            max_length=MAX_METADATA_CHARS,
            description="`key base64value` pairs, comma-separated: `filename`, `filetype` "
            "(the media type), and the options `format`, `delimiter`, `header`, `encoding`, "
            "`max_errors`; other keys are ignored",
            examples=["filename b3JkZXJzLmNzdg==,format Y3N2"],
        ),
    ] = None,
    upload_checksum: UploadChecksum = None,
) -> Response:
    """Create a resumable upload (tus creation), optionally with its first bytes."""
    length = _creation_length(upload_length, upload_defer_length)
    described = describe(parse_metadata(upload_metadata) if upload_metadata else {})
    with_body = _has_body(request)
    if with_body and media_type_of(request) != OFFSET_OCTET_STREAM:
        raise UnsupportedMediaType(
            f"A body sent when creating an upload must be {OFFSET_OCTET_STREAM}."
        )
    checksum = parse_checksum(upload_checksum)
    state = await uploads.create(owner, length, upload_metadata, described)
    location = f"/uploads/{state.id}"
    try:
        if with_body:
            outcome = await uploads.append(
                state,
                request,
                offset=0,
                length=None,
                declared=declared_length(request),
                checksum=checksum,
            )
        else:
            outcome = await uploads.complete_if_whole(state)
    except ProblemError as refused:
        refused.headers["Location"] = location  # the upload exists: resume it
        raise
    _dispatch_new_job(outcome, background, uploads)
    headers = {"Location": location, **upload_headers(outcome.state)}
    return Response(status_code=201, headers=headers)


@router.head(
    "/{upload_id}",
    operation_id="getUploadOffset",
    responses={
        200: {
            "description": "The upload's offset; `Link` to its job once it is whole",
            "headers": {
                **OFFSET_HEADER,
                "Upload-Length": {"description": "The whole size", "schema": {"type": "string"}},
                "Upload-Defer-Length": {
                    "description": "1 while the length is not known",
                    "schema": {"type": "string"},
                },
                "Upload-Metadata": {
                    "description": "As sent at creation",
                    "schema": {"type": "string"},
                },
                "Cache-Control": {"description": "no-store", "schema": {"type": "string"}},
                **EXPIRES_HEADER,
                **LINK_HEADER,
                **TUS_RESUMABLE_HEADER,
            },
        },
        404: {**PROBLEM, "description": "No such upload (or it expired, or is another key's)"},
        503: {
            **PROBLEM,
            "description": "Whole, but its job could not be made yet: the queue "
            "is full, or the service is stopping",
        },
        507: {**PROBLEM, "description": "Whole, but its job could not be made: the disk is low"},
        **TUS_PROBLEMS,
    },
    openapi_extra=SECURITY,
)
async def get_upload_offset(
    upload_id: str,
    background: BackgroundTasks,
    uploads: UploadsDep,
    owner: OwnerDep,
    tus_resumable: TusResumable,
) -> Response:
    """How many bytes of the upload are stored; a whole upload's job is made if it has none."""
    state = await uploads.find(upload_id, owner)
    outcome = await uploads.complete_if_whole(state)
    _dispatch_new_job(outcome, background, uploads)
    state = outcome.state
    headers = {"Cache-Control": "no-store", **upload_headers(state)}
    if state.length is None:
        headers["Upload-Defer-Length"] = "1"
    else:
        headers["Upload-Length"] = str(state.length)
    if state.metadata:
        headers["Upload-Metadata"] = state.metadata
    return Response(status_code=200, headers=headers)


@router.patch(
    "/{upload_id}",
    status_code=204,
    operation_id="patchUpload",
    responses={
        204: {
            "description": "Stored: `Upload-Offset` is the new offset, durable; when the upload "
            "is whole, `Link` names its job",
            "headers": {**OFFSET_HEADER, **EXPIRES_HEADER, **LINK_HEADER, **TUS_RESUMABLE_HEADER},
        },
        404: {**PROBLEM, "description": "No such upload (or it expired, or is another key's)"},
        408: {
            **PROBLEM,
            "description": "Nothing arrived for INGEST_CLIENT_TIMEOUT_S mid-body "
            "(what arrived is kept)",
        },
        409: {
            **PROBLEM,
            "description": "Upload-Offset is not the upload's offset, or another "
            "request is writing to it",
        },
        413: {**PROBLEM, "description": "Past Upload-Length or INGEST_MAX_UPLOAD_BYTES"},
        415: {**PROBLEM, "description": "Content-Type is not application/offset+octet-stream"},
        460: {
            **PROBLEM,
            "description": "The body does not match its Upload-Checksum; it was not kept",
        },
        503: {
            **PROBLEM,
            "description": "Whole, but its job could not be made yet (every byte "
            "is kept: retry with a PATCH of no bytes at the final offset, or a HEAD)",
        },
        507: {**PROBLEM, "description": "Free disk would fall below INGEST_MIN_FREE_BYTES"},
        **TUS_PROBLEMS,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The next bytes of the file, from Upload-Offset on",
            "content": OFFSET_BODY,
        },
        **SECURITY,
    },
)
async def patch_upload(
    upload_id: str,
    request: Request,
    background: BackgroundTasks,
    uploads: UploadsDep,
    owner: OwnerDep,
    tus_resumable: TusResumable,
    upload_offset: Annotated[
        str,
        Header(
            pattern=NON_NEGATIVE,
            description="Where this body starts: the upload's current offset (else 409)",
            examples=["0"],
        ),
    ],
    upload_length: UploadLength = None,
    upload_checksum: UploadChecksum = None,
) -> Response:
    """Append bytes at the upload's offset (tus core); the last byte makes the job."""
    state = await uploads.find(upload_id, owner)
    if media_type_of(request) != OFFSET_OCTET_STREAM:
        raise UnsupportedMediaType(f"A PATCH body must be {OFFSET_OCTET_STREAM}.")
    outcome = await uploads.append(
        state,
        request,
        offset=int(upload_offset),
        length=_number(upload_length),
        declared=declared_length(request),
        checksum=parse_checksum(upload_checksum),
    )
    _dispatch_new_job(outcome, background, uploads)
    return Response(status_code=204, headers=upload_headers(outcome.state))


@router.delete(
    "/{upload_id}",
    status_code=204,
    operation_id="terminateUpload",
    responses={
        204: {"description": "Removed with its bytes (a job made from it stays)"},
        404: {**PROBLEM, "description": "No such upload (or it expired, or is another key's)"},
        409: {**PROBLEM, "description": "A request is still writing to it"},
        **TUS_PROBLEMS,
    },
    openapi_extra=SECURITY,
)
async def terminate_upload(
    upload_id: str, uploads: UploadsDep, owner: OwnerDep, tus_resumable: TusResumable
) -> Response:
    """Remove an upload and its stored bytes (tus termination)."""
    await uploads.terminate(upload_id, owner)
    return Response(status_code=204)
