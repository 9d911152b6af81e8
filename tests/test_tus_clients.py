"""Resumable uploads against a real server, driven by tuspy (a tus client written elsewhere)
and by raw sockets: a connection cut in the middle, the server killed with -9 in the middle,
two PATCHes racing."""

from __future__ import annotations

import hashlib
import select
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx
import pytest
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError, TusUploadFailed

from tests.helpers import wait_until
from tests.proxy import CuttingProxy
from tests.rawhttp import RawConnection, request_head
from tests.samples import MiB, assert_succeeded_with_csv, write_csv
from tests.server import ServiceProcess, StartService

pytestmark = pytest.mark.slow

CHUNK = 8 * MiB
TUS = {"Tus-Resumable": "1.0.0"}


@dataclass(frozen=True)
class SampleFile:
    path: Path
    rows: int
    sha256: str


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampleFile]:
    path = tmp_path_factory.mktemp("tus") / "big.csv"
    rows = write_csv(path, 100 * MiB)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(4 * MiB):
            digest.update(block)
    yield SampleFile(path, rows, digest.hexdigest())
    path.unlink()


def uploader_for(  # type: ignore[no-untyped-def]
    base_url: str, stream: BinaryIO, url: str | None = None, retries: int = 0
):
    """A tuspy uploader of the sample file (given as a stream: tuspy leaves files it opens
    from a path unclosed)."""
    client = TusClient(f"{base_url}/uploads")
    return client.uploader(
        file_stream=stream,
        url=url,
        chunk_size=CHUNK,
        metadata={"filename": "big.csv", "filetype": "text/csv"},
        retries=retries,
        retry_delay=1,
    )


def upload_until_it_breaks(uploader) -> list[int]:  # type: ignore[no-untyped-def]
    """Send chunks until the connection breaks; every offset the server reported."""
    told = []
    with pytest.raises((TusUploadFailed, TusCommunicationError)):
        while uploader.offset < uploader.get_file_size():
            uploader.upload_chunk()
            told.append(uploader.offset)
    return told


def job_id_of(server: ServiceProcess, upload_url: str) -> str:
    response = httpx.head(upload_url, headers=TUS)
    assert response.status_code == 200, response.headers
    assert response.headers["upload-offset"] == response.headers["upload-length"]
    return response.headers["link"].removeprefix("</jobs/").removesuffix('>; rel="job"')


def check_job(server: ServiceProcess, job_id: str, sample: SampleFile) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        wait_until(lambda: client.get(f"/jobs/{job_id}").json()["done"], timeout=120)
        job = client.get(f"/jobs/{job_id}").json()
        assert job["file"]["sha256"] == sample.sha256
        assert job["file"]["size"] == sample.path.stat().st_size
        assert_succeeded_with_csv(client, job_id, sample.rows)


def test_tuspy_resumes_after_the_connection_is_cut(
    start_service: StartService, tmp_path: Path, big_csv: SampleFile
) -> None:
    server = start_service(tmp_path / "data")
    with CuttingProxy(server.port, cut_after=45 * MiB) as proxy, open(big_csv.path, "rb") as stream:
        first = uploader_for(proxy.url, stream)
        first.set_url(first.create_url())
        told = upload_until_it_breaks(first)
        assert proxy.cut.is_set()
        assert told, "no chunk was acknowledged before the cut"
        path = first.url.removeprefix(proxy.url)

    with open(big_csv.path, "rb") as stream:
        resumed = uploader_for(server.url, stream, url=f"{server.url}{path}", retries=3)
        # The server keeps what arrived before the cut, past the last acknowledged chunk.
        assert resumed.offset >= told[-1]
        resumed.upload()
    check_job(server, job_id_of(server, resumed.url), big_csv)


def test_tuspy_resumes_after_the_server_is_killed_and_restarted(
    start_service: StartService, tmp_path: Path, big_csv: SampleFile
) -> None:
    data_dir = tmp_path / "data"
    server = start_service(data_dir)
    with open(big_csv.path, "rb") as stream:
        uploader = uploader_for(server.url, stream)
        uploader.set_url(uploader.create_url())
        path = uploader.url.removeprefix(server.url)
        stored = data_dir / "resumable" / path.removeprefix("/uploads/") / "data"

        def kill_in_the_middle() -> None:
            wait_until(lambda: stored.stat().st_size > 40 * MiB, timeout=60)
            server.kill()

        killer = threading.Thread(target=kill_in_the_middle)
        killer.start()
        told = upload_until_it_breaks(uploader)
        killer.join()
    assert told and told[-1] < big_csv.path.stat().st_size

    restarted = start_service(data_dir)
    with open(big_csv.path, "rb") as stream:
        resumed = uploader_for(restarted.url, stream, url=f"{restarted.url}{path}", retries=3)
        assert resumed.offset >= told[-1]  # every offset the client was told survived kill -9
        resumed.upload()
    check_job(restarted, job_id_of(restarted, resumed.url), big_csv)


def test_racing_patches_over_sockets_one_wins_and_bytes_never_interleave(
    start_service: StartService, tmp_path: Path
) -> None:
    server = start_service(tmp_path / "data")
    body_a = b"id\n" + b"".join(b"%d\n" % n for n in range(200_000))
    body_b = b"id\n" + b"9" * (len(body_a) - 4) + b"\n"
    created = httpx.post(
        f"{server.url}/uploads", headers={**TUS, "Upload-Length": str(len(body_a))}
    )
    location = created.headers["location"]
    head = {
        **TUS,
        "Content-Type": "application/offset+octet-stream",
        "Upload-Offset": "0",
        "Content-Length": str(len(body_a)),
    }
    with RawConnection(server.port) as first, RawConnection(server.port) as second:
        first.send(request_head("PATCH", location, head) + body_a[:1000])
        second.send(request_head("PATCH", location, head) + body_b[:1000])
        # Whichever took the upload first waits for the rest of its body; the other is
        # refused at once.
        answered, _, _ = select.select([first.sock, second.sock], [], [], 30)
        assert len(answered) == 1, "one PATCH must be refused, and only one"
        if answered[0] is second.sock:
            loser, winner, body, rows = second, first, body_a, 200_000
        else:
            loser, winner, body, rows = first, second, body_b, 1
        answer = loser.read_response()
        assert answer.status == 409, answer.body
        winner.send(body[1000:])
        assert winner.read_response().status == 204
    final = httpx.head(f"{server.url}{location}", headers=TUS)
    job_id = final.headers["link"].removeprefix("</jobs/").removesuffix('>; rel="job"')
    with httpx.Client(base_url=server.url) as client:
        wait_until(lambda: client.get(f"/jobs/{job_id}").json()["done"])
        job = client.get(f"/jobs/{job_id}").json()
    assert job["file"]["sha256"] == hashlib.sha256(body).hexdigest()
    assert job["result"]["rows"] == rows
