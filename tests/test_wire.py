"""Uploads and limits over a real socket to a real server (`python -m service`).

Bodies are cut at chosen points, each piece sent on its own, because how the bytes arrive
(several multipart parts in one read, a boundary split across two) is exactly what an
in-process client never varies.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import FINISHED, ndjson
from tests.rawhttp import Part, RawConnection, chunked, multipart_body, request_head
from tests.server import ServiceProcess, StartedProcesses

pytestmark = pytest.mark.slow

HEADER_TIMEOUT_S = 2.0
CLIENT_TIMEOUT_S = 2.0
BOUNDARY = "wire-7MA4YWxkTrZu0gW"
PEOPLE = b"1;ada\n2;grace\n3;linus\n"
PEOPLE_ROWS = [
    {"col1": 1, "col2": "ada"},
    {"col1": 2, "col2": "grace"},
    {"col1": 3, "col2": "linus"},
]
FILE = Part("file", PEOPLE, file_name="people.txt", media_type="text/plain")
HEADER = Part("header", b"false")
DELIMITER = Part("delimiter", b";")
MAX_ERRORS = Part("max_errors", b"7")
# Options before the file, after it, and around it: each layout once in one chunk used to
# lose its options or be refused.
LAYOUTS = {
    "options after the file": [FILE, HEADER, DELIMITER, MAX_ERRORS],
    "options before the file": [HEADER, DELIMITER, MAX_ERRORS, FILE],
    "options around the file": [HEADER, FILE, DELIMITER, MAX_ERRORS],
}
EXPECTED_OPTIONS = {
    "format": "csv",
    "delimiter": ";",
    "header": False,
    "encoding": "auto",
    "max_errors": 7,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    data_dir = tmp_path_factory.mktemp("wire") / "data"
    data_dir.mkdir()
    with StartedProcesses() as started:
        yield started.service(
            data_dir,
            INGEST_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S),
            INGEST_CLIENT_TIMEOUT_S=str(CLIENT_TIMEOUT_S),
            INGEST_LOG_LEVEL="WARNING",
        )


def multipart_upload(parts: list[Part], target: str = "/jobs?format=csv") -> tuple[bytes, bytes]:
    body = multipart_body(parts, BOUNDARY)
    head = request_head(
        "POST",
        target,
        {
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            "Content-Length": str(len(body)),
        },
    )
    return head, body


def accepted(response: Any, body_file: bytes) -> dict[str, Any]:
    assert response.status == 202, response.body
    job: dict[str, Any] = response.json()
    assert job["file"]["size"] == len(body_file)
    assert job["file"]["sha256"] == hashlib.sha256(body_file).hexdigest()
    return job


def finished_rows(server: ServiceProcess, job_id: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=server.url, timeout=10) as client:
        while True:
            job = client.get(f"/jobs/{job_id}").json()
            if job["status"] in FINISHED:
                break
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
        assert job["status"] == "succeeded", job
        return ndjson(client.get(f"/jobs/{job_id}/result").content)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_multipart_options_survive_one_chunk_and_one_byte_at_a_time(
    server: ServiceProcess, layout: str
) -> None:
    head, body = multipart_upload(LAYOUTS[layout])
    with RawConnection(server.port) as connection:
        connection.send(head + body)
        job = accepted(connection.read_response(), PEOPLE)
        assert job["options"] == EXPECTED_OPTIONS
        assert job["file"]["name"] == "people.txt"
        connection.send(head + body, cuts=range(len(head), len(head) + len(body)), pause_s=0)
        one_byte = accepted(connection.read_response(), PEOPLE)
        assert one_byte["options"] == EXPECTED_OPTIONS
    assert finished_rows(server, job["id"]) == PEOPLE_ROWS
    assert finished_rows(server, one_byte["id"]) == PEOPLE_ROWS


def test_multipart_cut_at_every_position(server: ServiceProcess) -> None:
    head, body = multipart_upload(LAYOUTS["options around the file"])
    lanes = 4

    def upload_cut_at(lane: int) -> list[str]:
        job_ids = []
        with RawConnection(server.port) as connection:
            for cut in range(1 + lane, len(body), lanes):
                connection.send(head + body, cuts=[len(head) + cut])
                job = accepted(connection.read_response(), PEOPLE)
                assert job["options"] == EXPECTED_OPTIONS, cut
                job_ids.append(job["id"])
        return job_ids

    with ThreadPoolExecutor(lanes) as pool:
        job_ids = [job_id for lane in pool.map(upload_cut_at, range(lanes)) for job_id in lane]
    assert len(job_ids) == len(body) - 1
    assert finished_rows(server, job_ids[-1]) == PEOPLE_ROWS


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    layout=st.sampled_from(sorted(LAYOUTS)),
    framing=st.sampled_from(["multipart", "raw", "raw chunked"]),
    cuts=st.lists(st.floats(0, 1, exclude_min=True, exclude_max=True), max_size=12),
    chunk_cuts=st.lists(st.floats(0, 1, exclude_min=True, exclude_max=True), max_size=5),
)
def test_uploads_cut_anywhere_keep_their_bytes_and_options(
    server: ServiceProcess, layout: str, framing: str, cuts: list[float], chunk_cuts: list[float]
) -> None:
    if framing == "multipart":
        head, body = multipart_upload(LAYOUTS[layout])
    else:
        query = "format=csv&header=false&delimiter=%3B&max_errors=7&filename=people.txt"
        if framing == "raw":
            headers = {"Content-Length": str(len(PEOPLE))}
            body = PEOPLE
        else:
            headers = {"Transfer-Encoding": "chunked"}
            body = chunked(PEOPLE, [int(c * len(PEOPLE)) for c in chunk_cuts])
        head = request_head("POST", f"/jobs?{query}", {"Content-Type": "text/csv", **headers})
    positions = [len(head) + int(c * len(body)) for c in cuts]
    with RawConnection(server.port) as connection:
        connection.send(head + body, cuts=positions)
        job = accepted(connection.read_response(), PEOPLE)
    assert job["options"] == EXPECTED_OPTIONS
    assert job["file"]["name"] == "people.txt"


def test_a_multi_megabyte_file_between_options(server: ServiceProcess) -> None:
    rows = [f"{n};name {n}\n".encode() for n in range(500_000)]
    data = b"".join(rows)
    assert len(data) > 6_000_000
    file = Part("file", data, file_name="big.txt", media_type="text/plain")
    head, body = multipart_upload([HEADER, file, DELIMITER, MAX_ERRORS])
    # Uneven pieces, some of them splitting part headers and the closing boundary.
    cuts = [len(head) + n for n in (7, 100, 65_537, 1_000_003, len(body) - 60, len(body) - 3)]
    with RawConnection(server.port) as connection:
        connection.send(head + body, cuts=cuts)
        job = accepted(connection.read_response(), data)
    assert job["options"] == EXPECTED_OPTIONS
    result = finished_rows(server, job["id"])
    assert len(result) == 500_000
    assert result[-1] == {"col1": 499_999, "col2": "name 499999"}


def test_headers_over_64_kib_get_431_at_once(server: ServiceProcess) -> None:
    with RawConnection(server.port) as connection:
        connection.send(request_head("GET", "/healthz", {"X-Padding": "p" * 60_000}))
        assert connection.read_response().status == 200
    started = time.monotonic()
    with RawConnection(server.port) as connection:
        connection.send(request_head("GET", "/healthz", {"X-Padding": "p" * 70_000}))
        refused = connection.read_response()
        assert connection.closed_within(5)
    assert refused.status == 431
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["status"] == 431
    assert time.monotonic() - started < 5


def test_pipelined_requests_are_measured_one_by_one(server: ServiceProcess) -> None:
    small = request_head("GET", "/healthz", {"X-Padding": "p" * 40_000})
    large = request_head("GET", "/healthz", {"X-Padding": "p" * 70_000})
    with RawConnection(server.port) as connection:
        # Two heads of 40 KB in one send: neither is over the limit.
        connection.send(small + small)
        assert connection.read_response().status == 200
        assert connection.read_response().status == 200
        # A small head, then a large one beginning in the same chunk as its end.
        connection.send(small + large)
        assert connection.read_response().status == 200
        assert connection.closed_within(5)
        assert connection.read_response().status == 431


def test_an_endless_header_is_cut_off_after_64_kib(server: ServiceProcess) -> None:
    """A 100 MiB header used to be read whole (13 s, the loop stalled); now the server
    answers once 64 KiB have come without the head ending, and stays responsive."""
    sent = 0
    started = time.monotonic()
    with RawConnection(server.port) as connection:
        connection.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Endless: ")
        try:
            while sent < 100 * 1024 * 1024:
                connection.sock.sendall(b"e" * 65536)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert connection.closed_within(5)
    elapsed = time.monotonic() - started
    # Socket buffers on both sides take a few MiB before the refusal reaches the client.
    assert sent < 16 * 1024 * 1024, sent
    assert elapsed < 5, elapsed
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200


def test_an_unfinished_head_gets_408_and_is_closed(server: ServiceProcess) -> None:
    started = time.monotonic()
    with RawConnection(server.port) as connection:
        connection.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        # Trickling bytes does not extend the deadline: it runs from the first byte.
        for _ in range(3):
            time.sleep(HEADER_TIMEOUT_S / 4)
            connection.send(b"s")
        assert connection.closed_within(HEADER_TIMEOUT_S * 5)
        response = connection.read_response()
    assert response.status == 408
    assert response.json()["detail"]
    assert HEADER_TIMEOUT_S * 0.9 < time.monotonic() - started < HEADER_TIMEOUT_S * 5


def test_silent_connections_are_closed(server: ServiceProcess) -> None:
    connections = [RawConnection(server.port) for _ in range(100)]
    try:
        connections[0].send(b"GET /healthz HTTP/1.1\r\n")
        deadline = time.monotonic() + HEADER_TIMEOUT_S * 5
        for connection in connections:
            assert connection.closed_within(max(deadline - time.monotonic(), 0.01))
    finally:
        for connection in connections:
            connection.close()
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200


def _job_count(server: ServiceProcess) -> int:
    page = httpx.get(f"{server.url}/jobs?limit=1000", timeout=10).json()
    return len(page["items"])


def _incoming(server: ServiceProcess) -> list[Path]:
    return list((server.data_dir / "incoming").iterdir())


@pytest.mark.parametrize("framing", ["raw", "multipart"])
def test_a_body_shorter_than_its_length_gets_408_and_leaves_nothing(
    server: ServiceProcess, framing: str
) -> None:
    before = _job_count(server)
    data = PEOPLE * 200_000  # over a write block, so a partial file exists while it waits
    if framing == "raw":
        media_type, body = "text/csv", data
    else:
        media_type = f"multipart/form-data; boundary={BOUNDARY}"
        body = multipart_body([Part("file", data, file_name="p.csv")], BOUNDARY)[:-100]
    length = str(len(body) + 10)
    head = request_head("POST", "/jobs", {"Content-Type": media_type, "Content-Length": length})
    with RawConnection(server.port) as connection:
        connection.send(head + body)
        time.sleep(CLIENT_TIMEOUT_S / 2)
        assert _incoming(server) != []
        assert connection.closed_within(CLIENT_TIMEOUT_S * 5)
        response = connection.read_response()
    assert response.status == 408
    assert response.headers["content-type"] == "application/problem+json"
    assert "nothing was kept" in response.json()["detail"]
    assert _incoming(server) == []
    assert _job_count(server) == before
