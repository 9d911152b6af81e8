"""HTTP header semantics of the job routes: `Prefer: wait`, `If-None-Match`, and the headers
every job response carries."""

from __future__ import annotations

import math

from service.jobs.views import etag_of
from service.models import JobPublic

MAX_WAIT_S = 30


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
