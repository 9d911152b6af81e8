"""The rules of the tus 1.0.0 resumable upload protocol that are not about storage: versions,
extensions, the headers' formats (Upload-Metadata, Upload-Checksum, Upload-Expires) and the
two statuses tus adds (412 for another protocol version, 460 for a checksum mismatch)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Protocol

from service.errors import BadRequest, ProblemError
from service.options import OPTION_NAMES, JobOptions
from service.upload.receive import validate_options
from service.upload.request import clean_file_name

TUS_VERSION = "1.0.0"
EXTENSIONS = (
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "termination",
    "checksum",
    "expiration",
)
OFFSET_OCTET_STREAM = "application/offset+octet-stream"
MAX_METADATA_CHARS = 16 * 1024
# Upload-Offset and Upload-Length: digits only (no sign, no spaces, no exponent), and no
# more of them than a 64-bit size has.
NON_NEGATIVE = r"^[0-9]{1,19}$"
FILE_NAME_KEYS = ("filename", "name")  # tus-js-client and Uppy send one of these
MEDIA_TYPE_KEYS = ("filetype", "type")
_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
_METADATA_KEY = re.compile(r"^[!-+\--~]+$")  # visible ASCII but the comma


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...
    def hexdigest(self) -> str: ...
    def copy(self) -> Hasher: ...


def _md5() -> Hasher:
    return hashlib.md5(usedforsecurity=False)


CHECKSUM_ALGORITHMS: dict[str, Callable[[], Hasher]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "md5": _md5,
}


class PreconditionFailed(ProblemError):
    """The client speaks a tus version this server does not."""

    status, title = 412, "Precondition Failed"


class ChecksumMismatch(ProblemError):
    """The chunk does not match its Upload-Checksum; it was not kept."""

    status, title = 460, "Checksum Mismatch"


def check_version(tus_resumable: str | None) -> None:
    """412 unless the request says it speaks tus 1.0.0 (every request but OPTIONS must)."""
    if tus_resumable is None or tus_resumable.strip() != TUS_VERSION:
        shown = "no Tus-Resumable header" if tus_resumable is None else repr(tus_resumable)
        raise PreconditionFailed(
            f"This server speaks tus {TUS_VERSION}; the request has {shown}.",
            headers={"Tus-Version": TUS_VERSION},
        )


def parse_metadata(header: str) -> dict[str, bytes]:
    """Upload-Metadata: comma-separated `key base64value` pairs (the value may be absent)."""
    pairs: dict[str, bytes] = {}
    for number, member in enumerate(header.split(","), 1):
        key, _, encoded = member.strip().partition(" ")
        encoded = encoded.strip()
        if not key or not _METADATA_KEY.match(key):
            raise BadRequest(
                f"Upload-Metadata: pair {number} has no key, or a key with characters other "
                "than visible ASCII; send `key base64value` pairs separated by commas."
            )
        if key in pairs:
            raise BadRequest(f"Upload-Metadata: the key {key!r} is given twice.")
        try:
            pairs[key] = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(
                f"Upload-Metadata: the value of {key!r} is not valid base64."
            ) from None
    return pairs


@dataclass(frozen=True)
class UploadDescription:
    """What the Upload-Metadata of a new upload says about its file and its parse."""

    file_name: str
    media_type: str
    options: JobOptions


def describe(metadata: Mapping[str, bytes]) -> UploadDescription:
    """The file name, media type and parse options of an upload's metadata; other keys (tus
    clients add their own, such as Uppy's `relativePath`) are ignored."""
    name = _text(metadata, FILE_NAME_KEYS)
    media_type = (_text(metadata, MEDIA_TYPE_KEYS) or "").split(";", 1)[0].strip().lower()
    if media_type and not _MEDIA_TYPE.match(media_type):
        raise BadRequest(f"Upload-Metadata: {media_type!r} is not a media type.")
    options = {key: _decoded(metadata[key], key) for key in OPTION_NAMES if key in metadata}
    return UploadDescription(
        file_name=clean_file_name(name),
        media_type=media_type or "application/octet-stream",
        options=validate_options(options),
    )


def _decoded(value: bytes, key: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"Upload-Metadata: the value of {key!r} is not UTF-8.") from None


def _text(metadata: Mapping[str, bytes], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if key in metadata:
            return _decoded(metadata[key], key)
    return None


@dataclass(frozen=True)
class Checksum:
    """An Upload-Checksum: the algorithm's name and the digest the chunk must have."""

    algorithm: str
    digest: bytes

    def hasher(self) -> Hasher:
        return CHECKSUM_ALGORITHMS[self.algorithm]()


def parse_checksum(header: str | None) -> Checksum | None:
    """Upload-Checksum: `<algorithm> <base64 digest>`; 400 for an algorithm not supported."""
    if header is None:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    if algorithm not in CHECKSUM_ALGORITHMS:
        supported = ", ".join(CHECKSUM_ALGORITHMS)
        raise BadRequest(
            f"Upload-Checksum: the algorithm {algorithm!r} is not supported; use one of "
            f"{supported} (Tus-Checksum-Algorithm)."
        )
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("Upload-Checksum: the checksum is not valid base64.") from None
    if len(digest) != len(CHECKSUM_ALGORITHMS[algorithm]().digest()):
        raise BadRequest(f"Upload-Checksum: a {algorithm} checksum has another length.")
    return Checksum(algorithm, digest)


def http_date(moment: datetime) -> str:
    """An RFC 9110 date, as Upload-Expires takes: `Wed, 25 Jun 2014 16:00:00 GMT`."""
    return format_datetime(moment, usegmt=True)
