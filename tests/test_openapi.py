"""The OpenAPI document against the service: schemathesis generates requests from it and
checks every response: no server error, only documented status codes, content types and
headers, bodies that match their schemas, invalid input refused, undocumented methods
answered 405. It runs all its phases: the document's examples, boundary values of every
parameter, random requests, and stateful sequences along the links from an upload.

It runs in process (ASGI) for speed; tests/test_wire.py covers the real socket.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import schemathesis
from schemathesis.engine import events, from_schema
from schemathesis.engine.recorder import Interaction, Request
from schemathesis.python import asgi

from service.api.docs import build_openapi
from service.main import create_app
from tests.apps import make_settings, migrate

# A schema-valid upload may still be refused with a documented 400: its digest header may
# not match its body, its encoding may name no codec, its multipart body may hold no file.
# What a schema cannot say is left out; every other check runs.
SEMANTIC_CHECKS = ["positive_data_acceptance"]
# Uploads are files: their bytes go as they are, whatever the media type says.
RAW_BODY_MEDIA_TYPES = [
    "application/gzip",
    "application/jsonl",
    "application/x-ndjson",
    "application/offset+octet-stream",  # tus: the bytes of a resumable upload
]
# Schemathesis' statuses for a refused request outside the schema, plus tus' 412: tus answers
# a request in another protocol version, or with no Tus-Resumable header, with 412 alone.
REFUSALS = ["400", "401", "403", "404", "405", "406", "409", "415", "422", "428", "429", "5xx"]
MISSING_HEADER_REFUSALS = ["400", "401", "403", "406", "415", "422"]
TUS_REFUSALS = {
    "negative_data_rejection": [*REFUSALS, "412"],
    "missing_required_header": [*MISSING_HEADER_REFUSALS, "412"],
}
CONFIG = {
    "seed": 20261124,
    "generation": {"max-examples": 50},
    "phases": {"stateful": {"max-steps": 10}},
    "checks": {
        **{check: {"enabled": False} for check in SEMANTIC_CHECKS},
        **{check: {"expected-statuses": codes} for check, codes in TUS_REFUSALS.items()},
    },
    "max-stream-events": 20,
    "request-timeout": 20,
}


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"ingest-openapi-{os.getpid()}-")) / "data"
    path.mkdir()
    try:
        yield path
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


def test_schemathesis_finds_nothing(data_dir: Path) -> None:
    settings = make_settings(data_dir, max_concurrent_jobs=1)
    migrate(settings.sqlalchemy_url)
    app = create_app(settings)
    schema = schemathesis.openapi.from_dict(
        build_openapi(app), config=schemathesis.Config.from_dict(CONFIG)
    )
    schema.app = app
    schemathesis.serializer.alias(RAW_BODY_MEDIA_TYPES, "application/octet-stream")
    failures: list[str] = []
    errors: list[str] = []
    scenarios = 0
    try:
        for event in from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                scenarios += 1
                for case_id, checks in event.recorder.checks.items():
                    interaction = event.recorder.interactions.get(case_id)
                    for check in checks:
                        if check.failure_info is not None and not _a_valid_upload_after_all(
                            check.name, interaction, check.failure_info.failure.message
                        ):
                            failure = check.failure_info.failure
                            failures.append(
                                f"{failure.code} {failure.title} ({check.name}):\n"
                                f"{failure.message}\n{check.failure_info.code_sample}"
                            )
            elif isinstance(event, (events.NonFatalError, events.FatalError)):
                errors.append(repr(event))
            elif isinstance(event, events.EngineFinished):
                assert event.stop_reason == "completed", event.stop_reason
    finally:
        # The engine started the app's lifespan on its first request: stop the executor.
        asgi.shutdown_lifespans()
    assert not errors, "\n\n".join(errors)
    assert not failures, "\n\n".join(sorted(set(failures)))
    assert scenarios > 0


# One multipart part named `file`, with a file name: what POST /jobs asks for.
_ONE_FILE_PART = re.compile(
    rb"\A--(?P<boundary>[^\r]+)\r\n"
    rb'Content-Disposition: form-data; name="file"; filename="[^"\r]*"\r\n'
    rb"(?:(?!--(?P=boundary)).)*--(?P=boundary)--\r\n\Z",
    re.DOTALL,
)


_PART_NAME = re.compile(rb'^Content-Disposition: form-data; name="([^"]*)"', re.MULTILINE)
_MUTATED_PROPERTY = re.compile(r"at /properties/([^/\s`]+)")


def _a_valid_upload_after_all(check: str, interaction: Interaction | None, message: str) -> bool:
    """A negative case for POST /jobs whose mutation did not survive its serialization as
    multipart, so the 202 is right: the body is a plain upload of one file (an extra or a
    missing property was lost), or none of the properties the mutation made invalid is among
    its parts (a property turned into an empty array is sent as no part at all). A known class
    of schemathesis false positives for multipart bodies; each seen here once in many runs."""
    if check != "negative_data_rejection" or interaction is None:
        return False
    request = interaction.request
    content_type = " ".join(request.headers.get("Content-Type", []))
    if not (
        request.method == "POST"
        and urlsplit(request.uri).path == "/jobs"
        and content_type.startswith("multipart/form-data")
        and request.body is not None
    ):
        return False
    if _ONE_FILE_PART.match(request.body) is not None:
        return True
    sent = {name.decode(errors="replace") for name in _PART_NAME.findall(request.body)}
    mutated = set(_MUTATED_PROPERTY.findall(message))
    return "file" in sent and bool(mutated) and not mutated & sent


def test_only_a_plain_one_file_upload_counts_as_valid_after_all() -> None:
    def interaction(body: bytes, path: str = "/jobs") -> Interaction:
        headers = {"Content-Type": ["multipart/form-data; boundary=b1"]}
        request = Request("POST", f"http://testserver{path}", body, len(body), headers)
        return Interaction(request=request, response=None)

    one_file = (
        b'--b1\r\nContent-Disposition: form-data; name="file"; filename="f.png"\r\n\r\n'
        b"\x89PNG\r\n--b1--\r\n"
    )
    negative = "negative_data_rejection"
    assert _a_valid_upload_after_all(negative, interaction(one_file), "")
    extra_part = one_file[: -len(b"--b1--\r\n")] + (
        b'--b1\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--b1--\r\n'
    )
    no_file = one_file.replace(b'name="file"', b'name="other"')
    assert not _a_valid_upload_after_all(negative, interaction(extra_part), "")
    assert not _a_valid_upload_after_all(negative, interaction(no_file), "")
    assert not _a_valid_upload_after_all(negative, interaction(one_file, "/x"), "")
    assert not _a_valid_upload_after_all("not_a_server_error", interaction(one_file), "")
    # Options sent, but not the ones the mutation broke (empty arrays: no part at all).
    with_options = one_file[: -len(b"--b1--\r\n")] + (
        b'--b1\r\nContent-Disposition: form-data; name="format"\r\n\r\ncsv\r\n--b1--\r\n'
    )
    vanished = (
        "- violates `type` at /properties/encoding (was string, became array)\n"
        "- violates `type` at /properties/max_errors (was integer, became array)"
    )
    assert _a_valid_upload_after_all(negative, interaction(with_options), vanished)
    sent = vanished.replace("/properties/encoding", "/properties/format")
    assert not _a_valid_upload_after_all(negative, interaction(with_options), sent)
    assert not _a_valid_upload_after_all(negative, interaction(with_options), "")
