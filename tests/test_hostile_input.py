"""Inputs a careless or hostile client may send: each gets a clear 4xx, never a 500."""

from __future__ import annotations

import base64

import httpx
import pytest

from service.config import Settings
from service.storage import job_paths
from tests.helpers import assert_problem, wait_for_job

CSV = b"id,name\n1,ada\n2,grace\n"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def _job_with_errors(client: httpx.AsyncClient) -> str:
    body = b"a,b\n" + b"".join(b"%d\n" % n for n in range(30))
    response = await client.post(
        "/jobs?filename=e.csv", content=body, headers={"Content-Type": "text/csv"}
    )
    job_id: str = response.json()["id"]
    assert (await wait_for_job(client, job_id))["result"]["rows_failed"] == 30
    return job_id


@pytest.mark.parametrize(
    "cursor",
    [
        b64(b"5"),
        b64(b"10" + b"0" * 22),
        b64(b"-1"),
        b64(b"x"),
        "%%%",
        b64(b"0"),
        "wrI",  # "²", which str.isdigit() accepts
        b64("١٢".encode()),  # Arabic-Indic digits
        b64(b"9" * 5000),  # beyond int()'s 4,300-digit limit
        b64(b"1" * 100),
        "A" * 10_000,
    ],
)
async def test_forged_row_error_cursors_are_400(client: httpx.AsyncClient, cursor: str) -> None:
    job_id = await _job_with_errors(client)
    assert_problem(await client.get(f"/jobs/{job_id}/errors?cursor={cursor}"), 400)


async def test_row_error_cursor_pages_stay_valid(client: httpx.AsyncClient) -> None:
    job_id = await _job_with_errors(client)
    lines: list[int] = []
    url: str | None = f"/jobs/{job_id}/errors?limit=7"
    while url:
        page = (await client.get(url)).json()
        lines += [item["line"] for item in page["items"]]
        url = page["next"]
    assert lines == list(range(2, 32))


async def test_forged_list_cursors_are_400(client: httpx.AsyncClient) -> None:
    forged = [
        b"2026-01-01T00:00:00|a\x00b",
        b"not a date|x",
        b"2026-01-01T00:00:00",
        "２０２６-01-01T00:00:00|0b6c4bd4-4d7f-4f44-9a57-7f1d1b5a3e10".encode(),
        b"9" * 5000,
    ]
    for raw in forged:
        assert_problem(await client.get(f"/jobs?cursor={b64(raw)}"), 400)
    for cursor in ["wrI", "A" * 10_000]:
        assert_problem(await client.get(f"/jobs?cursor={cursor}"), 400)


async def test_malformed_multipart_bodies_are_400(client: httpx.AsyncClient) -> None:
    huge_boundary = {"Content-Type": "multipart/form-data; boundary=" + "x" * 1000}
    assert_problem(await client.post("/jobs", content=b"--x\r\n", headers=huge_boundary), 400)
    truncated = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="t.csv"\r\n\r\nid\n1\n'
    )
    problem = assert_problem(
        await client.post(
            "/jobs", content=truncated, headers={"Content-Type": "multipart/form-data; boundary=b"}
        ),
        400,
    )
    assert "closing boundary" in problem["detail"]
    assert (await client.get("/jobs")).json()["items"] == []


async def test_a_file_field_that_is_not_a_file_is_explained(client: httpx.AsyncClient) -> None:
    problem = assert_problem(
        await client.post("/jobs", data={"file": "id\n1\n"}, files={"x": ("", b"")}), 400
    )
    assert problem["detail"]


@pytest.mark.parametrize("encoding", ["rot13", "hex", "base64", "zlib", "undefined", "idna"])
async def test_encodings_that_are_not_text_are_400(
    client: httpx.AsyncClient, encoding: str
) -> None:
    response = await client.post(
        f"/jobs?encoding={encoding}", content=CSV, headers={"Content-Type": "text/csv"}
    )
    assert_problem(response, 400)


@pytest.mark.parametrize("delimiter", ["%00", "%C3%A9", "%22", "%0A", "%0D", "ab"])
async def test_unusable_delimiters_are_400(client: httpx.AsyncClient, delimiter: str) -> None:
    response = await client.post(
        f"/jobs?delimiter={delimiter}", content=CSV, headers={"Content-Type": "text/csv"}
    )
    assert_problem(response, 400)


async def test_text_encodings_and_tab_delimiters_are_fine(client: httpx.AsyncClient) -> None:
    for query in ["encoding=latin-1", "encoding=UTF-16", "delimiter=%09", "delimiter=%7C"]:
        response = await client.post(
            f"/jobs?{query}", content=CSV, headers={"Content-Type": "text/csv"}
        )
        assert response.status_code == 202, (query, response.text)


async def test_prefer_wait_that_is_not_a_number_is_ignored(client: httpx.AsyncClient) -> None:
    for prefer in ["wait=nan", "wait=inf", "wait=soon", "respond-async"]:
        response = await client.post(
            "/jobs", content=CSV, headers={"Content-Type": "text/csv", "Prefer": prefer}
        )
        assert response.status_code == 202, prefer
        assert "preference-applied" not in response.headers


async def test_prefer_wait_is_echoed_as_applied_in_plain_seconds(
    client: httpx.AsyncClient,
) -> None:
    for prefer, applied in [
        ("wait=1e-320", "wait=0"),
        ("wait=0.0004", "wait=0"),
        ("wait=1e-2", "wait=0.01"),
        ("wait=2.5e-1", "wait=0.25"),
        ("wait=99", "wait=30"),
        ("wait=-3", "wait=0"),
    ]:
        response = await client.post(
            "/jobs", content=CSV, headers={"Content-Type": "text/csv", "Prefer": prefer}
        )
        assert response.status_code in {200, 202}, prefer
        assert response.headers["preference-applied"] == applied, prefer


async def test_an_empty_content_encoding_is_identity(client: httpx.AsyncClient) -> None:
    for value in ["", "  ", "identity"]:
        response = await client.post(
            "/jobs", content=CSV, headers={"Content-Type": "text/csv", "Content-Encoding": value}
        )
        assert response.status_code == 202, (value, response.text)
        done = await wait_for_job(client, response.json()["id"])
        assert done["result"]["rows"] == 2


async def test_content_encoding_on_multipart_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/jobs", files={"file": ("t.csv", CSV, "text/csv")}, headers={"Content-Encoding": "gzip"}
    )
    assert_problem(response, 415)


async def test_result_whose_file_vanished_is_404(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    response = await client.post("/jobs", content=CSV, headers={"Content-Type": "text/csv"})
    job_id = response.json()["id"]
    await wait_for_job(client, job_id)
    job_paths(settings.data_dir, job_id).result.unlink()
    assert_problem(await client.get(f"/jobs/{job_id}/result"), 404)


async def test_head_requests_answer_without_a_body(client: httpx.AsyncClient) -> None:
    response = await client.post("/jobs", content=CSV, headers={"Content-Type": "text/csv"})
    job_id = response.json()["id"]
    head = await client.head(f"/jobs/{job_id}")
    assert head.status_code == 200
    assert head.headers["etag"]
    assert (await client.head("/healthz")).status_code == 200
    assert_problem(await client.get(f"/jobs/{job_id}x"), 404)


async def test_oversized_and_odd_query_values_are_400(client: httpx.AsyncClient) -> None:
    for url in ["/jobs?limit=99999999999999999999", "/jobs?limit=-1", "/jobs?limit=abc"]:
        assert_problem(await client.get(url), 400)
    response = await client.post(
        "/jobs?max_errors=99999999999999999999", content=CSV, headers={"Content-Type": "text/csv"}
    )
    assert_problem(response, 400)


async def test_a_form_field_given_twice_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/jobs",
        files=[
            ("file", ("t.csv", CSV, "text/csv")),
            ("header", (None, b"true")),
            ("header", (None, b"false")),
        ],
    )
    problem = assert_problem(response, 400)
    assert "header" in problem["detail"]
