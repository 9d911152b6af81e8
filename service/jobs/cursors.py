"""Cursors of paged lists: opaque base64url text the service wrote, checked strictly."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime

from service.errors import BadRequest
from service.models import is_job_id

# Cursors are base64url of at most ~70 ASCII characters; anything longer is not ours.
MAX_CURSOR_CHARS = 128
CURSOR_CHARS = re.compile(r"[A-Za-z0-9_-]*")
# A row-errors cursor is a byte offset: ASCII digits only (str.isdigit also takes "²").
OFFSET = re.compile(r"[0-9]{1,19}")


def encode_cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(value: str) -> str:
    """The text of a cursor this service wrote: short, base64url, ASCII inside; else 400."""
    if len(value) > MAX_CURSOR_CHARS or not CURSOR_CHARS.fullmatch(value):
        raise BadRequest("The cursor is not valid.")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("The cursor is not valid.") from None
    return raw


@dataclass(frozen=True)
class JobCursor:
    """Where a page of /jobs ends: the last job's creation time and id."""

    created_at: datetime
    job_id: str

    def encode(self) -> str:
        return encode_cursor(f"{self.created_at.isoformat()}|{self.job_id}")

    @classmethod
    def decode(cls, value: str) -> JobCursor:
        created, _, job_id = decode_cursor(value).partition("|")
        try:
            cursor = cls(datetime.fromisoformat(created), job_id)
        except ValueError:
            cursor = None
        if cursor is None or not is_job_id(job_id):
            raise BadRequest("The cursor is not valid.")
        return cursor


def decode_offset(value: str) -> int:
    """The byte offset a row-errors cursor holds; 400 unless it is one."""
    raw = decode_cursor(value)
    if not OFFSET.fullmatch(raw):
        raise BadRequest("The cursor is not valid.")
    return int(raw)
