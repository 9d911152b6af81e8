"""Reading jobs: the list, the result before success, and row errors."""

from __future__ import annotations

import httpx

from tests.helpers import assert_problem, wait_for_job


async def _submit(client: httpx.AsyncClient, body: bytes, name: str = "f.csv") -> str:
    response = await client.post("/jobs", files={"file": (name, body, "text/csv")})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


async def test_list_is_newest_first_with_cursor_pages(client: httpx.AsyncClient) -> None:
    ids = [await _submit(client, f"n\n{n}\n".encode()) for n in range(5)]
    seen: list[str] = []
    url: str | None = "/jobs?limit=2"
    while url:
        page = (await client.get(url)).json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        url = page["next"]
    assert seen == list(reversed(ids))


async def test_list_filters_by_status(client: httpx.AsyncClient) -> None:
    good = await _submit(client, b"a\n1\n")
    bad = await _submit(client, b"", name="empty.csv")
    await wait_for_job(client, good)
    assert (await wait_for_job(client, bad))["status"] == "failed"
    failed = (await client.get("/jobs?status=failed")).json()["items"]
    assert [job["id"] for job in failed] == [bad]
    assert failed[0]["error"]["code"] == "empty_file"
    assert_problem(await client.get("/jobs?status=lost"), 400)
    assert_problem(await client.get("/jobs?cursor=%%%"), 400)
    assert_problem(await client.get("/jobs?limit=0"), 400)


async def test_result_is_409_until_succeeded(client: httpx.AsyncClient) -> None:
    job_id = await _submit(client, b"", name="empty.csv")
    done = await wait_for_job(client, job_id)
    assert done["status"] == "failed"
    assert done["result"] is None
    assert_problem(await client.get(f"/jobs/{job_id}/result"), 409)


async def test_row_errors_are_listed_in_file_order_with_pages(client: httpx.AsyncClient) -> None:
    body = b"a,b\n1,2\n3\n4,5\n6,7,8\n9\n"
    job_id = await _submit(client, body)
    done = await wait_for_job(client, job_id)
    assert done["status"] == "succeeded", done
    assert done["result"]["rows"] == 2
    assert done["result"]["rows_failed"] == 3
    first = (await client.get(f"/jobs/{job_id}/errors?limit=2")).json()
    assert first["total"] == 3
    assert [e["line"] for e in first["items"]] == [3, 5]
    assert first["items"][0]["type"] == "field_count"
    assert first["items"][0]["raw"] == "3"
    second = (await client.get(first["next"])).json()
    assert [e["line"] for e in second["items"]] == [6]
    assert second["next"] is None


async def test_a_job_without_row_errors_lists_none(client: httpx.AsyncClient) -> None:
    """No row failed, so no errors file was written: the list is there, and empty."""
    for body, name in [(b"a,b\n1,2\n", "f.csv"), (b"", "empty.csv")]:
        job_id = await _submit(client, body, name)
        await wait_for_job(client, job_id)
        errors = await client.get(f"/jobs/{job_id}/errors")
        assert errors.status_code == 200, errors.text
        assert errors.json() == {"total": 0, "stored": 0, "items": [], "next": None}
