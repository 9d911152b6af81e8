"""API keys, health, readiness and metrics over HTTP."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from tests.apps import app_client, settings_with
from tests.helpers import assert_problem, wait_for_job

CSV = b"id,name\n1,ada\n"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_the_key_is_checked_before_any_parameter(data_dir: Path) -> None:
    """The routes that read their parameters by hand keep FastAPI's order and errors: 401
    without a key, whatever the parameters; with the key, 400 naming each bad one."""
    async with app_client(settings_with(data_dir, api_keys="alpha")) as client:
        created = await client.post(
            "/jobs", content=CSV, headers={"Content-Type": "text/csv", **bearer("alpha")}
        )
        job_id = created.json()["id"]
        bad_upload = "/jobs?delimiter=ab&colour=blue"
        bad_poll = f"/jobs/{job_id}?wait=soon"
        for key in [{}, bearer("beta")]:
            assert_problem(await client.post(bad_upload, content=CSV, headers=key), 401)
            assert_problem(await client.get(bad_poll, headers=key), 401)
            assert (await client.head(bad_poll, headers=key)).status_code == 401
        alpha = bearer("alpha")
        refused = await client.post(
            bad_upload, content=CSV, headers={"Content-Type": "text/csv", **alpha}
        )
        locations = [error["loc"] for error in assert_problem(refused, 400)["errors"]]
        assert locations == [["query", "delimiter"], ["query", "colour"]]
        for wait in ["soon", "-1", "31", "nan", ""]:
            refused = await client.get(f"/jobs/{job_id}?wait={wait}", headers=alpha)
            assert assert_problem(refused, 400)["errors"][0]["loc"] == ["query", "wait"]
        assert_problem(await client.get("/jobs/no-such-job?wait=0.1", headers=alpha), 404)
        polled = await client.get(f"/jobs/{job_id}?wait=0.05", headers=alpha)
        assert polled.status_code == 200 and polled.json()["id"] == job_id


async def test_two_api_keys_never_see_each_others_jobs(data_dir: Path) -> None:
    async with app_client(settings_with(data_dir, api_keys="alpha,beta")) as client:
        missing = await client.get("/jobs")
        assert_problem(missing, 401)
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert_problem(await client.get("/jobs", headers=bearer("gamma")), 401)
        assert_problem(
            await client.post("/jobs", content=CSV, headers={"Content-Type": "text/csv"}), 401
        )

        created = await client.post(
            "/jobs",
            content=CSV,
            headers={"Content-Type": "text/csv", "Idempotency-Key": "same", **bearer("alpha")},
        )
        assert created.status_code == 202
        job_id = created.json()["id"]
        assert (await wait_for_job_as(client, job_id, "alpha"))["status"] == "succeeded"

        beta = bearer("beta")
        for method, path in [
            ("GET", f"/jobs/{job_id}"),
            ("GET", f"/jobs/{job_id}/result"),
            ("GET", f"/jobs/{job_id}/errors"),
            ("GET", f"/jobs/{job_id}/events"),
            ("POST", f"/jobs/{job_id}/cancel"),
            ("DELETE", f"/jobs/{job_id}"),
        ]:
            assert_problem(await client.request(method, path, headers=beta), 404)
        assert (await client.get("/jobs", headers=beta)).json()["items"] == []
        # Idempotency keys belong to their API key: beta's "same" is a new job.
        other = await client.post(
            "/jobs",
            content=b"x\n1\n",
            headers={"Content-Type": "text/csv", "Idempotency-Key": "same", **beta},
        )
        assert other.status_code == 202
        assert other.json()["id"] != job_id
        alpha_jobs = (await client.get("/jobs", headers=bearer("alpha"))).json()["items"]
        assert [job["id"] for job in alpha_jobs] == [job_id]

        for open_path in ["/healthz", "/readyz", "/metrics"]:
            assert (await client.get(open_path)).status_code == 200
        for documentation in ["/docs", "/openapi.json"]:
            assert_problem(await client.get(documentation), 401)
            assert (await client.get(documentation, headers=beta)).status_code == 200


async def wait_for_job_as(client: httpx.AsyncClient, job_id: str, key: str) -> dict[str, object]:
    client.headers.update(bearer(key))
    try:
        return await wait_for_job(client, job_id)
    finally:
        del client.headers["Authorization"]


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "database": "ok",
        "data_dir": "ok",
        "disk": "ok",
        "executor": "ok",
        "accepting": "ok",
    }


async def test_readiness_names_the_failing_check(data_dir: Path) -> None:
    async with app_client(settings_with(data_dir, min_free_bytes=10**18)) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["disk"].startswith("failed")
        assert ready.json()["checks"]["database"] == "ok"


async def metrics_once_counted(client: httpx.AsyncClient, name: str, timeout: float = 10.0) -> str:
    """The metrics text once the series `name` appears; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        text = (await client.get("/metrics")).text
        if f"\n{name} " in text:
            return text
        assert time.monotonic() < deadline, f"{name} not counted after {timeout}s"
        await asyncio.sleep(0.02)


async def test_metrics_count_jobs_uploads_and_parse_time(client: httpx.AsyncClient) -> None:
    job_id = (await client.post("/jobs", content=CSV, headers={"Content-Type": "text/csv"})).json()[
        "id"
    ]
    await wait_for_job(client, job_id)
    # The worker commits the job before the API process hears of it and counts it.
    text = await metrics_once_counted(client, 'ingest_rows_total{outcome="parsed"}')
    assert 'ingest_jobs{status="succeeded"} 1.0' in text
    assert 'ingest_uploads_total{outcome="accepted"} 1.0' in text
    assert f"ingest_upload_bytes_total {float(len(CSV))}" in text
    assert 'ingest_rows_total{outcome="parsed"} 1.0' in text
    assert 'ingest_parse_duration_seconds_count{status="succeeded"} 1.0' in text
    assert "ingest_queue_depth 0.0" in text
    assert "ingest_jobs_in_flight 0.0" in text


async def test_openapi_documents_every_endpoint(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert set(paths) >= {
        "/jobs",
        "/jobs/{job_id}",
        "/jobs/{job_id}/result",
        "/jobs/{job_id}/errors",
        "/jobs/{job_id}/events",
        "/jobs/{job_id}/cancel",
        "/healthz",
        "/readyz",
        "/metrics",
    }
    post = paths["/jobs"]["post"]
    assert {"413", "415", "503", "507"} <= set(post["responses"])
    assert "multipart/form-data" in post["requestBody"]["content"]
    names = {param["name"] for param in post["parameters"]}
    assert {"format", "delimiter", "header", "encoding", "max_errors", "filename"} <= names
    assert {"idempotency-key", "prefer", "repr-digest", "content-digest"} <= names
    assert (await client.get("/docs")).status_code == 200
    for operations in paths.values():
        for operation in operations.values():
            # Invalid parameters are 400; the only 422 is a reused Idempotency-Key.
            assert "422" not in operation["responses"] or operation is post
    assert "400" in paths["/jobs/{job_id}"]["get"]["responses"]
    assert spec["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
