"""RFC 9530 integrity fields: `Repr-Digest` / `Content-Digest` with sha-256."""

from __future__ import annotations

import base64
import binascii

from starlette.datastructures import Headers

from service.errors import BadRequest

DIGEST_HEADERS = ("repr-digest", "content-digest")


def expected_sha256(headers: Headers) -> str | None:
    """The sha-256 the client says its body has, as hex; None if it sent none.

    Only `sha-256` is checked; other algorithms in the dictionary are ignored, as RFC 9530
    allows. A malformed sha-256 entry is a 400.
    """
    expected: str | None = None
    for name in DIGEST_HEADERS:
        for value in headers.getlist(name):
            for member in value.split(","):
                algorithm, _, encoded = member.strip().partition("=")
                if algorithm.strip().lower() != "sha-256":
                    continue
                digest = _decode(encoded.strip(), name)
                if expected is not None and digest != expected:
                    raise BadRequest("The digest headers disagree with each other.")
                expected = digest
    return expected


def _decode(encoded: str, header: str) -> str:
    if len(encoded) < 2 or not (encoded.startswith(":") and encoded.endswith(":")):
        raise BadRequest(f"{header}: sha-256 must be a byte sequence, like sha-256=:<base64>:")
    try:
        raw = base64.b64decode(encoded[1:-1], validate=True)
    except binascii.Error:
        raise BadRequest(f"{header}: sha-256 is not valid base64.") from None
    if len(raw) != 32:
        raise BadRequest(f"{header}: sha-256 must be 32 bytes.")
    return raw.hex()
