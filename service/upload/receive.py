"""Streaming an upload's body to storage: what the client sent, stored and described.

The body is never buffered whole: multipart bodies go through python-multipart's streaming
parser (`multipart.py`) and raw bodies straight to the `UploadWriter`, which counts size and
sha-256 as bytes arrive and enforces the size limit mid-stream.
"""

from __future__ import annotations

import errno
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request

from service.errors import (
    BadRequest,
    InsufficientStorage,
    PayloadTooLarge,
    RequestTimeout,
    validation_errors,
)
from service.options import JobOptions
from service.storage import StoredFile, UploadTooLarge, UploadWriter
from service.upload.multipart import Form, receive_multipart
from service.upload.request import (
    MULTIPART,
    BodyHash,
    ClientSilence,
    body_chunks,
    clean_file_name,
)


def validate_options(given: dict[str, Any]) -> JobOptions:
    try:
        return JobOptions.model_validate(given)
    except ValidationError as exc:
        errors = validation_errors(exc.errors())
        raise BadRequest("The upload options are not valid.", errors=errors) from None


@dataclass
class Upload:
    """What the client sent, once its body is stored."""

    file_name: str
    media_type: str
    content_encoding: str | None
    options: JobOptions
    stored: StoredFile


async def receive(
    request: Request,
    *,
    media_type: str,
    content_encoding: str | None,
    query_options: dict[str, Any],
    file_name: str | None,
    incoming_dir: Path,
    destination: Path | None,
    max_bytes: int,
    client_timeout_s: float,
    expected_sha256: str | None = None,
) -> Upload:
    """Stream the request body to `destination` and return what was stored.

    With `destination` None the body is only measured and hashed, then dropped.
    A body whose sha-256 differs from `expected_sha256` is refused (400) and dropped; a client
    silent for `client_timeout_s` mid-body gets 408. Nothing is left on disk unless this
    returns with a `destination`.
    """
    try:
        async with UploadWriter(incoming_dir, max_bytes) as writer:
            body_hash = hashlib.sha256() if expected_sha256 and media_type == MULTIPART else None
            form = await _receive_body(request, media_type, writer, client_timeout_s, body_hash)
            if form is not None:
                options = validate_options({**query_options, **form.fields})
                name = clean_file_name(form.file_name or file_name)
                stored_type = form.file_media_type or "application/octet-stream"
                encoding = None
            else:
                options = validate_options(query_options)
                name = clean_file_name(file_name)
                stored_type = media_type
                encoding = content_encoding
            stored = await writer.digest()
            body_sha256 = body_hash.hexdigest() if body_hash else stored.sha256
            if expected_sha256 and expected_sha256 != body_sha256:
                raise BadRequest("The body does not match its digest header; nothing was kept.")
            if destination is not None:
                stored = await writer.commit(destination)
    except UploadTooLarge as exc:
        raise PayloadTooLarge(str(exc)) from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise InsufficientStorage("The disk is full.") from None
        raise
    return Upload(
        file_name=name,
        media_type=stored_type,
        content_encoding=encoding,
        options=options,
        stored=stored,
    )


async def _receive_body(
    request: Request,
    media_type: str,
    writer: UploadWriter,
    client_timeout_s: float,
    body_hash: BodyHash | None,
) -> Form | None:
    """Write the file to `writer`; the form, for a multipart body."""
    try:
        async with ClientSilence(client_timeout_s) as silence:
            if media_type == MULTIPART:
                return await receive_multipart(request, writer, silence, body_hash)
            async for chunk in body_chunks(request, silence):
                await writer.write(chunk)
            return None
    except TimeoutError:
        raise RequestTimeout(
            f"The client sent nothing for {client_timeout_s:g} s in the middle of the body; "
            "nothing was kept.",
            headers={"Connection": "close"},
        ) from None
