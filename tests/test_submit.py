"""POST /jobs end to end: both upload styles, the job resource, and every refusal."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from service.config import Settings
from service.storage import job_paths
from tests.apps import app_client, settings_with
from tests.helpers import assert_problem, ndjson, wait_for_job

ORDERS_CSV = b"order_id,customer,amount\n1,ada,9.50\n2,grace,12\n3,linus,\n"
ORDERS_JSONL = b'{"order_id": 1, "customer": "ada"}\n{"order_id": 2, "customer": "grace"}\n'


async def test_multipart_upload_is_accepted_parsed_and_downloadable(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    response = await client.post("/jobs", files={"file": ("orders.csv", ORDERS_CSV, "text/csv")})
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/jobs/{job['id']}"
    assert response.headers["retry-after"] == "1"
    assert job["status"] in {"queued", "running", "succeeded"}
    assert job["file"] == {
        "name": "orders.csv",
        "size": len(ORDERS_CSV),
        "sha256": hashlib.sha256(ORDERS_CSV).hexdigest(),
        "media_type": "text/csv",
    }
    assert job["options"] == {
        "format": "auto",
        "delimiter": None,
        "header": True,
        "encoding": "auto",
        "max_errors": 1000,
    }
    assert job["links"]["result"] == f"/jobs/{job['id']}/result"
    assert job["created_at"].endswith("Z")

    done = await wait_for_job(client, job["id"])
    assert done["status"] == "succeeded", done
    assert done["done"] is True
    assert done["format"] == "csv"
    assert done["error"] is None
    assert done["result"]["rows"] == 3
    assert done["result"]["dialect"]["delimiter"] == ","
    assert [c["name"] for c in done["result"]["columns"]] == ["order_id", "customer", "amount"]
    assert done["progress"]["percent"] == 100.0
    assert done["progress"]["rows_done"] == 3
    assert done["finished_at"] >= done["started_at"] >= done["created_at"]

    result = await client.get(f"/jobs/{job['id']}/result")
    assert result.status_code == 200
    assert result.headers["content-type"].startswith("application/x-ndjson")
    assert ndjson(result.content) == [
        {"order_id": 1, "customer": "ada", "amount": 9.5},
        {"order_id": 2, "customer": "grace", "amount": 12},
        {"order_id": 3, "customer": "linus", "amount": None},
    ]
    stored = job_paths(settings.data_dir, job["id"]).upload
    assert stored.read_bytes() == ORDERS_CSV


async def test_raw_body_upload_with_media_type(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/jobs", content=ORDERS_JSONL, headers={"Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 202, response.text
    assert response.json()["file"]["name"] == "upload"
    done = await wait_for_job(client, response.json()["id"])
    assert done["status"] == "succeeded", done
    assert done["format"] == "jsonl"
    result = await client.get(f"/jobs/{done['id']}/result")
    assert ndjson(result.content) == ndjson(ORDERS_JSONL)


async def test_chunked_raw_body_with_filename(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for line in ORDERS_CSV.splitlines(keepends=True):
            yield line

    response = await client.post(
        "/jobs?filename=orders.csv",
        content=chunks(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["file"]["name"] == "orders.csv"
    assert job["file"]["size"] == len(ORDERS_CSV)
    done = await wait_for_job(client, job["id"])
    assert done["status"] == "succeeded"
    assert done["result"]["rows"] == 3


async def test_gzip_content_encoding_is_stored_as_sent(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    body = gzip.compress(ORDERS_CSV)
    response = await client.post(
        "/jobs?filename=orders.csv",
        content=body,
        headers={"Content-Type": "text/csv", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job_paths(settings.data_dir, job["id"]).upload.read_bytes() == body
    done = await wait_for_job(client, job["id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["rows"] == 3


async def test_options_from_form_fields_and_query(client: httpx.AsyncClient) -> None:
    body = b"1;ada\n2;grace\n"
    response = await client.post(
        "/jobs?format=csv",
        files={"file": ("people.txt", body, "text/plain")},
        data={"header": "false", "delimiter": ";"},
    )
    assert response.status_code == 202, response.text
    assert response.json()["options"]["header"] is False
    assert response.json()["options"]["delimiter"] == ";"
    done = await wait_for_job(client, response.json()["id"])
    assert done["status"] == "succeeded", done
    rows = ndjson((await client.get(f"/jobs/{done['id']}/result")).content)
    assert rows == [{"col1": 1, "col2": "ada"}, {"col1": 2, "col2": "grace"}]


async def test_no_file_field_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/jobs", data={"format": "csv"}, files={"other": ("", b"")})
    assert_problem(response, 400)
    response = await client.post("/jobs", data={"format": "csv"})
    # A urlencoded form is not an upload at all.
    assert_problem(response, 415)


async def test_multipart_without_any_file_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/jobs",
        content=b'--b\r\nContent-Disposition: form-data; name="format"\r\n\r\ncsv\r\n--b--\r\n',
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    problem = assert_problem(response, 400)
    assert "file" in problem["detail"]


async def test_two_files_are_400_and_leave_nothing(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    files = [("file", ("a.csv", b"a\n1\n", "text/csv")), ("file", ("b.csv", b"b\n2\n", "text/csv"))]
    response = await client.post("/jobs", files=files)
    assert_problem(response, 400)
    assert (await client.get("/jobs")).json()["items"] == []
    assert list((settings.data_dir / "incoming").iterdir()) == []


async def test_bad_options_are_400(client: httpx.AsyncClient) -> None:
    cases = [
        "/jobs?format=xml",
        "/jobs?delimiter=;;",
        "/jobs?header=maybe",
        "/jobs?max_errors=-1",
        "/jobs?encoding=klingon",
        "/jobs?colour=blue",
    ]
    for url in cases:
        response = await client.post(url, files={"file": ("a.csv", b"a\n1\n", "text/csv")})
        problem = assert_problem(response, 400)
        assert problem["errors"], url
    response = await client.post(
        "/jobs", files={"file": ("a.csv", b"a\n1\n", "text/csv")}, data={"format": "xml"}
    )
    assert_problem(response, 400)
    response = await client.post(
        "/jobs", files={"file": ("a.csv", b"a\n1\n", "text/csv")}, data={"colour": "blue"}
    )
    assert_problem(response, 400)
    assert (await client.get("/jobs")).json()["items"] == []


async def test_every_bad_parameter_is_named_in_one_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/jobs?delimiter=ab&max_errors=-1&colour=blue&colour=red",
        files={"file": ("a.csv", b"a\n1\n", "text/csv")},
        headers={"Idempotency-Key": '""'},
    )
    problem = assert_problem(response, 400)
    assert [(error["loc"], error["type"]) for error in problem["errors"]] == [
        (["query", "delimiter"], "string_too_long"),
        (["query", "max_errors"], "greater_than_equal"),
        (["query", "colour"], "extra_forbidden"),
        (["header", "idempotency-key"], "string_pattern_mismatch"),
    ]
    too_long = {"Idempotency-Key": "k" * 256}
    response = await client.post("/jobs", content=b"a\n1\n", headers=too_long)
    problem = assert_problem(response, 400)
    assert problem["errors"][0]["loc"] == ["header", "idempotency-key"]
    assert (await client.get("/jobs")).json()["items"] == []


async def test_an_option_given_twice_in_the_query_takes_the_last(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/jobs?header=true&header=false",
        content=b"1,2\n",
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 202
    assert response.json()["options"]["header"] is False


async def test_malformed_multipart_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/jobs", content=b"garbage", headers={"Content-Type": "multipart/form-data"}
    )
    assert_problem(response, 400)
    response = await client.post(
        "/jobs",
        content=b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n',
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert_problem(response, 400)


async def test_unsupported_media_type_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post("/jobs", content=b"<p>", headers={"Content-Type": "text/html"})
    assert_problem(response, 415)
    response = await client.post(
        "/jobs", content=b"a", headers={"Content-Type": "text/csv", "Content-Encoding": "br"}
    )
    assert_problem(response, 415)


async def test_declared_length_over_limit_is_413_before_reading(data_dir: Path) -> None:
    async with app_client(settings_with(data_dir, max_upload_bytes=1000)) as client:
        response = await client.post(
            "/jobs", content=b"x" * 5000, headers={"Content-Type": "text/csv"}
        )
        assert_problem(response, 413)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"y" * 400

        response = await client.post(
            "/jobs", content=chunks(), headers={"Content-Type": "text/csv"}
        )
        assert_problem(response, 413)
        assert (await client.get("/jobs")).json()["items"] == []
    assert list((data_dir / "incoming").iterdir()) == []
    assert list((data_dir / "uploads").iterdir()) == []


async def test_unknown_and_malformed_job_ids_are_404(client: httpx.AsyncClient) -> None:
    for job_id in ["0b6c4bd4-4d7f-4f44-9a57-7f1d1b5a3e10", "not-a-uuid", "..%2F..%2Fetc"]:
        for suffix in ["", "/result", "/errors"]:
            response = await client.get(f"/jobs/{job_id}{suffix}")
            assert_problem(response, 404)


async def test_unknown_route_is_problem_json(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/nowhere"), 404)
    assert_problem(await client.put("/jobs"), 405)


async def test_405_names_every_method_of_the_path_and_hints_post(
    client: httpx.AsyncClient,
) -> None:
    # curl -T file URL sends PUT.
    response = await client.put("/jobs", content=ORDERS_CSV)
    problem = assert_problem(response, 405)
    assert response.headers["allow"] == "GET, POST"
    assert "-X POST" in problem["detail"]
    job_id = "0b6c4bd4-4d7f-4f44-9a57-7f1d1b5a3e10"
    response = await client.request("PATCH", f"/jobs/{job_id}")
    problem = assert_problem(response, 405)
    assert response.headers["allow"] == "GET, HEAD, DELETE"
    assert "-X POST" not in problem["detail"]
    response = await client.get(f"/jobs/{job_id}/cancel")
    assert_problem(response, 405)
    assert response.headers["allow"] == "POST"


async def test_a_trailing_slash_serves_the_same_route(client: httpx.AsyncClient) -> None:
    response = await client.post("/jobs/", files={"file": ("orders.csv", ORDERS_CSV, "text/csv")})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert (await client.get(f"/jobs/{job_id}/")).json()["id"] == job_id
    listed = (await client.get("/jobs/")).json()["items"]
    assert [job["id"] for job in listed] == [job_id]
    assert (await client.get("/healthz/")).status_code == 200
    assert_problem(await client.get("/nowhere/"), 404)


async def test_an_empty_delimiter_is_sniffed(client: httpx.AsyncClient) -> None:
    # curl -F 'delimiter=;' sends an empty value: curl reads ';' as the start of attributes.
    for query, form in [("", {"delimiter": ""}), ("?delimiter=", {})]:
        response = await client.post(
            f"/jobs{query}",
            files={"file": ("people.txt", b"1;ada\n2;grace\n", "text/plain")},
            data={"header": "false", **form},
        )
        assert response.status_code == 202, response.text
        assert response.json()["options"]["delimiter"] is None
        done = await wait_for_job(client, response.json()["id"])
        assert done["result"]["dialect"]["delimiter"] == ";"
    for empty in ["format", "header", "max_errors", "encoding"]:
        response = await client.post(f"/jobs?{empty}=", content=b"a\n1\n")
        assert_problem(response, 400)


async def test_a_client_silent_mid_body_gets_408_and_nothing_is_kept(data_dir: Path) -> None:
    async with app_client(settings_with(data_dir, client_timeout_s=0.3)) as client:
        stalled = asyncio.Event()
        file_part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'

        async def stalls_after_a_block(start: bytes) -> AsyncIterator[bytes]:
            yield start + b"id\n" + b"1\n" * 1_000_000
            stalled.set()
            await asyncio.sleep(30)
            yield b"never"

        for media_type, start in [
            ("text/csv", b""),
            ("multipart/form-data; boundary=b", file_part),
        ]:
            stalled.clear()
            response = await client.post(
                "/jobs", content=stalls_after_a_block(start), headers={"Content-Type": media_type}
            )
            problem = assert_problem(response, 408)
            assert "nothing was kept" in problem["detail"]
            assert response.headers["connection"] == "close"
            assert stalled.is_set()
        assert (await client.get("/jobs")).json()["items"] == []
    assert list((data_dir / "incoming").iterdir()) == []
    assert list((data_dir / "uploads").iterdir()) == []
