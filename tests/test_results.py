"""Downloading a result in every format: negotiation, one conversion per job and format,
headers, byte ranges, and the problems (406, 409, 404 after a delete, 416)."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI

from service.config import Settings
from service.formats import FORMATS
from service.jobs.conversions import Conversions
from service.models import Job
from service.runner import sweeper
from service.storage import job_paths
from tests.apps import settings_with
from tests.helpers import assert_problem, ndjson, wait_for_job

ORDERS = (
    b"order_id,customer,amount,paid,ordered_on\n"
    b"1,ada,9.50,true,2026-11-01\n"
    b"2,grace,12,false,2026-11-02\n"
    b'3,"Hopper, Grace",,true,2026-11-03\n'
)
MEDIA_TYPES = {
    "ndjson": "application/x-ndjson",
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.stream",
}


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    """As the service runs by default: conversions go to the spare converter process."""
    return settings_with(data_dir, spare_converter=True)


async def _done(client: httpx.AsyncClient, body: bytes = ORDERS, name: str = "orders.csv") -> str:
    response = await client.post("/jobs", files={"file": (name, body, "text/csv")})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    assert (await wait_for_job(client, job_id))["status"] == "succeeded"
    return job_id


def _conversions(metrics: str, fmt: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(f'ingest_result_conversions_total{{format="{fmt}"}}'):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "ndjson"),
        ("*/*", "ndjson"),
        ("application/*", "ndjson"),
        ("text/csv", "csv"),
        ("text/*;q=0.9, application/vnd.apache.parquet", "parquet"),
        ("application/vnd.apache.parquet;q=0.5, text/csv", "csv"),
        ("application/json, text/csv", "json"),
        ("text/csv;charset=utf-8", "csv"),
        ("application/vnd.apache.arrow.stream", "arrow"),
        ("text/html, */*;q=0.1", "ndjson"),
        ("*/*;q=0.5, application/x-ndjson;q=0, application/json;q=0.4", "csv"),
        ("*/*;q=0.1, application/x-ndjson;q=0, application/json;q=0.4", "json"),
    ],
)
async def test_accept_chooses_the_format(
    client: httpx.AsyncClient, accept: str | None, expected: str
) -> None:
    job_id = await _done(client)
    headers = {"Accept": accept} if accept is not None else {}
    response = await client.get(f"/jobs/{job_id}/result", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == MEDIA_TYPES[expected]
    assert response.headers["vary"] == "Accept"


async def test_the_format_parameter_wins_over_accept(client: httpx.AsyncClient) -> None:
    job_id = await _done(client)
    for name, media_type in MEDIA_TYPES.items():
        response = await client.get(
            f"/jobs/{job_id}/result?format={name}", headers={"Accept": "text/html"}
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == media_type
        disposition = response.headers["content-disposition"]
        extension = "arrows" if name == "arrow" else name
        assert disposition == f'attachment; filename="orders.{extension}"'
    assert_problem(await client.get(f"/jobs/{job_id}/result?format=xml"), 400)


async def test_406_lists_the_formats_offered(client: httpx.AsyncClient) -> None:
    job_id = await _done(client)
    for accept in ("text/html", "image/*", "application/x-ndjson;q=0, text/plain"):
        problem = assert_problem(
            await client.get(f"/jobs/{job_id}/result", headers={"Accept": accept}), 406
        )
        for media_type in MEDIA_TYPES.values():
            assert media_type in problem["detail"]


async def test_every_format_holds_the_records(client: httpx.AsyncClient) -> None:
    job_id = await _done(client)
    records = ndjson((await client.get(f"/jobs/{job_id}/result")).content)
    assert [r["customer"] for r in records] == ["ada", "grace", "Hopper, Grace"]
    as_json = (await client.get(f"/jobs/{job_id}/result?format=json")).json()
    assert as_json == records
    as_csv = (await client.get(f"/jobs/{job_id}/result?format=csv")).content
    assert as_csv.splitlines()[0] == b"order_id,customer,amount,paid,ordered_on"
    assert as_csv.splitlines()[3] == b'3,"Hopper, Grace",,true,2026-11-03'
    parquet = (await client.get(f"/jobs/{job_id}/result?format=parquet")).content
    table = pq.read_table(io.BytesIO(parquet))
    assert table.column("amount").to_pylist() == [9.5, 12.0, None]
    assert str(table.schema.field("ordered_on").type) == "date32[day]"


async def test_the_job_links_every_format(client: httpx.AsyncClient) -> None:
    job_id = await _done(client)
    links = (await client.get(f"/jobs/{job_id}")).json()["links"]
    for name, media_type in MEDIA_TYPES.items():
        response = await client.get(links[f"result_{name}"])
        assert response.headers["content-type"] == media_type


async def test_a_conversion_is_made_once_and_kept_beside_the_result(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    job_id = await _done(client)
    url = f"/jobs/{job_id}/result?format=parquet"
    bodies = await asyncio.gather(*(client.get(url) for _ in range(10)))
    assert {b.status_code for b in bodies} == {200}
    assert len({b.content for b in bodies}) == 1
    assert len({b.headers["etag"] for b in bodies}) == 1
    kept = job_paths(settings.data_dir, job_id).converted("parquet")
    assert kept.read_bytes() == bodies[0].content
    inode = kept.stat().st_ino
    again = await client.get(url)
    assert again.content == bodies[0].content and kept.stat().st_ino == inode
    metrics = (await client.get("/metrics")).text
    assert _conversions(metrics, "parquet") == 1
    assert not list(kept.parent.glob(".*.tmp"))


async def test_ranges_resume_a_download_byte_for_byte(client: httpx.AsyncClient) -> None:
    job_id = await _done(client)
    for name in MEDIA_TYPES:
        url = f"/jobs/{job_id}/result?format={name}"
        whole = await client.get(url)
        size = len(whole.content)
        assert whole.headers["accept-ranges"] == "bytes"
        etag = whole.headers["etag"]
        cut = size // 2
        rest = await client.get(url, headers={"Range": f"bytes={cut}-"})
        assert rest.status_code == 206, rest.text
        assert rest.headers["content-range"] == f"bytes {cut}-{size - 1}/{size}"
        assert rest.headers["etag"] == etag
        assert whole.content[:cut] + rest.content == whole.content
        middle = await client.get(url, headers={"Range": "bytes=1-3", "If-Range": etag})
        assert (middle.status_code, middle.content) == (206, whole.content[1:4])
        tail = await client.get(url, headers={"Range": "bytes=-5"})
        assert (tail.status_code, tail.content) == (206, whole.content[-5:])
        stale = await client.get(url, headers={"Range": "bytes=1-3", "If-Range": '"other"'})
        assert (stale.status_code, stale.content) == (200, whole.content)
        for ignored in ("bytes=0-1,4-5", "bytes=5-2", "items=0-1", "bytes=x-"):
            response = await client.get(url, headers={"Range": ignored})
            assert (response.status_code, response.content) == (200, whole.content)
        past = await client.get(url, headers={"Range": f"bytes={size}-"})
        assert_problem(past, 416)
        assert past.headers["content-range"] == f"bytes */{size}"


async def test_head_answers_what_get_would_without_the_body(
    client: httpx.AsyncClient,
) -> None:
    job_id = await _done(client)
    unfinished = await client.post("/jobs", files={"file": ("empty.csv", b"", "text/csv")})
    await wait_for_job(client, unfinished.json()["id"])
    for name in MEDIA_TYPES:
        url = f"/jobs/{job_id}/result?format={name}"
        head = await client.head(url)  # before any GET: a conversion is made for it
        whole = await client.get(url)
        assert (head.status_code, head.content) == (200, b"")
        for header in ("content-type", "content-length", "etag", "content-disposition"):
            assert head.headers[header] == whole.headers[header], header
        assert int(head.headers["content-length"]) == len(whole.content)
        part = await client.head(url, headers={"Range": "bytes=2-"})
        assert part.status_code == 206
        size = len(whole.content)
        assert part.headers["content-range"] == f"bytes 2-{size - 1}/{size}"
        assert part.headers["content-length"] == str(size - 2)
        assert (await client.head(url, headers={"Range": f"bytes={size}-"})).status_code == 416
        refused = await client.head(f"/jobs/{unfinished.json()['id']}/result?format={name}")
        assert refused.status_code == 409
    assert (
        await client.head(f"/jobs/{job_id}/result", headers={"Accept": "text/html"})
    ).status_code == 406
    assert (await client.head("/jobs/nope/result")).status_code == 404


async def test_range_numbers_of_any_length_are_offsets_not_errors(
    client: httpx.AsyncClient,
) -> None:
    job_id = await _done(client)
    url = f"/jobs/{job_id}/result"
    whole = (await client.get(url)).content
    huge, zeros = "9" * 5000, "0" * 5000
    to_the_end = await client.get(url, headers={"Range": f"bytes=2-{huge}"})
    assert (to_the_end.status_code, to_the_end.content) == (206, whole[2:])
    everything = await client.get(url, headers={"Range": f"bytes=-{huge}"})
    assert (everything.status_code, everything.content) == (206, whole)
    padded = await client.get(url, headers={"Range": f"bytes={zeros}5-"})
    assert (padded.status_code, padded.content) == (206, whole[5:])
    assert_problem(await client.get(url, headers={"Range": f"bytes={huge}-"}), 416)


async def test_unfinished_and_deleted_jobs_stay_problems(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    failed = await client.post("/jobs", files={"file": ("empty.csv", b"", "text/csv")})
    failed_id = failed.json()["id"]
    await wait_for_job(client, failed_id)
    for name in MEDIA_TYPES:
        assert_problem(await client.get(f"/jobs/{failed_id}/result?format={name}"), 409)
    job_id = await _done(client)
    assert (await client.get(f"/jobs/{job_id}/result?format=csv")).status_code == 200
    root = job_paths(settings.data_dir, job_id).root
    assert (root / "result.csv").exists()
    assert (await client.delete(f"/jobs/{job_id}")).status_code == 204
    assert not root.exists()
    for name in MEDIA_TYPES:
        assert_problem(await client.get(f"/jobs/{job_id}/result?format={name}"), 404)
    assert_problem(await client.get("/jobs/nope/result?format=parquet"), 404)


async def test_a_failed_conversion_is_not_remembered(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    job_id = await _done(client)
    result = job_paths(settings.data_dir, job_id).result
    good = result.read_bytes()
    result.write_bytes(b"not json\n")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as plain:
        response = await plain.get(f"/jobs/{job_id}/result?format=parquet")
    assert_problem(response, 500)
    assert not list(result.parent.glob("*.parquet")) and not list(result.parent.glob(".*.tmp"))
    result.write_bytes(good)
    assert (await client.get(f"/jobs/{job_id}/result?format=parquet")).status_code == 200


async def test_the_download_is_named_after_the_upload(client: httpx.AsyncClient) -> None:
    cases = {
        "orders.csv.gz": 'attachment; filename="orders.parquet"',
        "dir/sub/Łódź.csv": 'attachment; filename="__d_.parquet"; '
        "filename*=UTF-8''%C5%81%C3%B3d%C5%BA.parquet",
        'we"ird.tsv': "attachment; filename=\"we_ird.parquet\"; filename*=UTF-8''we%22ird.parquet",
        "noext": 'attachment; filename="noext.parquet"',
    }
    for name, expected in cases.items():
        response = await client.post(
            "/jobs", params={"filename": name}, content=ORDERS, headers={"Content-Type": "text/csv"}
        )
        job_id = response.json()["id"]
        assert (await wait_for_job(client, job_id))["status"] == "succeeded"
        response = await client.get(f"/jobs/{job_id}/result?format=parquet")
        assert response.headers["content-disposition"] == expected, name


def test_stale_temporaries_are_removed_before_converting(tmp_path: Path) -> None:
    from service.jobs.conversions import _remove_temporaries

    destination = tmp_path / "result.parquet"
    (tmp_path / ".result.parquet.abc.tmp").write_bytes(b"x")
    (tmp_path / ".result.csv.abc.tmp").write_bytes(b"x")
    _remove_temporaries(destination)
    assert [p.name for p in tmp_path.iterdir()] == [".result.csv.abc.tmp"]


async def test_retention_removes_the_conversions_with_the_job(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    job_id = await _done(client)
    for name in ("json", "csv", "parquet", "arrow"):
        assert (await client.get(f"/jobs/{job_id}/result?format={name}")).status_code == 200
    root = job_paths(settings.data_dir, job_id).root
    assert len(list(root.glob("result.*"))) == 5
    runtime = app.state.runtime
    async with runtime.sessions() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        job.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        session.add(job)
        await session.commit()
    assert await sweeper.expire_jobs(settings, runtime.sessions) == 1
    assert not root.exists()
    runtime.views.changed(job_id)
    assert_problem(await client.get(f"/jobs/{job_id}/result?format=parquet"), 404)


async def test_api_processes_sharing_a_data_dir_take_turns_through_the_file_lock(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    """Two `Conversions` stand for two API processes: each has its own tasks, and a lock
    taken through its own descriptor (flock locks belong to the open file, not the process)."""
    job_id = await _done(client)
    paths = job_paths(settings.data_dir, job_id)
    job = (await client.get(f"/jobs/{job_id}")).json()
    made: list[str] = []
    destination = paths.converted("parquet")
    await asyncio.gather(
        *(
            Conversions().ensure(
                paths.result,
                job["result"]["columns"],
                FORMATS["parquet"],
                destination,
                lambda: made.append("made"),
            )
            for _ in range(3)
        )
    )
    assert made == ["made"]
    assert pq.read_table(destination).num_rows == 3
