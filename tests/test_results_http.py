"""Result downloads against a real server (`python -m service`), as clients take them: the
corpus downloaded in every format and read by DuckDB, pandas and pyarrow; downloads cut by
kill -9 of a real curl and resumed with `curl -C -`; ten clients at once on a fresh 200 MB
job's Parquet, converted once."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import threading
from pathlib import Path

import httpx
import psutil
import pytest
from pyarrow import parquet

from tests.formats import readers
from tests.formats.corpus import UPLOADS, Result
from tests.helpers import job_done, wait_until
from tests.proxy import CuttingProxy
from tests.samples import MiB, write_csv
from tests.server import StartService, job_log, log_records

pytestmark = pytest.mark.slow

EXTENSIONS = {
    "ndjson": "ndjson",
    "json": "json",
    "csv": "csv",
    "parquet": "parquet",
    "arrow": "arrows",
}
RSS_LIMIT = 128 * MiB


def _submit(client: httpx.Client, name: str, data: bytes, fmt: str) -> str:
    response = client.post("/jobs", params={"format": fmt}, files={"file": (name, data)})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def _download(client: httpx.Client, url: str, target: Path) -> str:
    """Streams `url` to `target`; its sha-256."""
    digest = hashlib.sha256()
    with client.stream("GET", url) as response, open(target, "wb") as out:
        assert response.status_code == 200, response.read()
        for chunk in response.iter_bytes(MiB):
            out.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


def test_the_corpus_downloaded_reads_in_every_tool(
    tmp_path: Path, start_service: StartService
) -> None:
    server = start_service(tmp_path / "data")
    with httpx.Client(base_url=server.url, timeout=60) as client:
        jobs = {u.name: _submit(client, f"{u.name}.txt", u.data, u.format) for u in UPLOADS}
        wait_until(lambda: all(job_done(client, job_id) for job_id in jobs.values()))
        for name, job_id in jobs.items():
            job = client.get(f"/jobs/{job_id}").json()
            assert job["status"] == "succeeded", job
            files: dict[str, Path] = {}
            for fmt, extension in EXTENSIONS.items():
                files[fmt] = tmp_path / f"{name}.{extension}"
                _download(client, job["links"][f"result_{fmt}"], files[fmt])
            result = Result(name, files["ndjson"], job["result"]["columns"])
            for check in readers.CHECKS:
                check(result, files)


def _curl(*args: str) -> list[str]:
    curl = shutil.which("curl")
    assert curl is not None, "curl is needed"
    return [curl, "-sS", "--fail", *args]


def test_a_download_cut_mid_way_resumes_with_curl(
    tmp_path: Path, start_service: StartService
) -> None:
    source = tmp_path / "orders.csv"
    write_csv(source, 24 * MiB)
    server = start_service(tmp_path / "data")
    with httpx.Client(base_url=server.url, timeout=120) as client:
        job_id = _submit(client, "orders.csv", source.read_bytes(), "csv")
        wait_until(lambda: job_done(client, job_id), timeout=120)
        for fmt in EXTENSIONS:
            path = f"/jobs/{job_id}/result?format={fmt}"
            whole = _download(client, path, tmp_path / f"whole.{fmt}")
            size = (tmp_path / f"whole.{fmt}").stat().st_size
            part = tmp_path / f"part.{fmt}"
            with CuttingProxy(server.port, cut_after=size // 2, downstream=True) as proxy:
                dropped = subprocess.run(
                    _curl("-o", str(part), proxy.url + path), capture_output=True, timeout=120
                )
                assert dropped.returncode != 0 and proxy.cut.is_set(), fmt
                assert 0 < part.stat().st_size < size, fmt
                # curl -C - asks for the bytes past those it has (Range: bytes=N-).
                resumed = subprocess.run(
                    _curl("-C", "-", "-o", str(part), proxy.url + path), timeout=120
                )
            assert resumed.returncode == 0, fmt
            assert hashlib.sha256(part.read_bytes()).hexdigest() == whole, fmt
    with open(tmp_path / "whole.parquet", "rb") as handle:
        assert parquet.ParquetFile(handle).metadata.num_columns == 5


def test_ten_clients_at_once_share_one_conversion(
    tmp_path: Path, start_service: StartService
) -> None:
    source = tmp_path / "big.csv"
    rows = write_csv(source, 200 * MiB)
    data_dir = tmp_path / "data"
    server = start_service(data_dir)
    with httpx.Client(base_url=server.url, timeout=600) as client:
        with open(source, "rb") as handle:
            response = client.post("/jobs", files={"file": ("big.csv", handle, "text/csv")})
        job_id = response.json()["id"]
        wait_until(lambda: job_done(client, job_id), timeout=600)
        assert client.get(f"/jobs/{job_id}").json()["status"] == "succeeded"

    api = psutil.Process(server.pid)
    baseline = api.memory_info().rss
    peak = baseline
    start = threading.Barrier(10)
    digests: list[str] = []
    failures: list[BaseException] = []

    def fetch(n: int) -> None:
        try:
            with httpx.Client(base_url=server.url, timeout=600) as client:
                start.wait()
                digests.append(
                    _download(client, f"/jobs/{job_id}/result?format=parquet", tmp_path / f"{n}.pq")
                )
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=fetch, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        peak = max(peak, api.memory_info().rss)
        threads[0].join(0.05)
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert len(digests) == 10 and len(set(digests)) == 1
    converted = log_records(server.log)
    assert len(job_log(converted, job_id, "result converted")) == 1
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'ingest_result_conversions_total{format="parquet"} 1.0' in metrics
    assert parquet.ParquetFile(tmp_path / "0.pq").metadata.num_rows == rows
    # The conversion ran in a process of its own: the API's memory stayed where it was.
    assert peak - baseline < RSS_LIMIT, (baseline, peak)
