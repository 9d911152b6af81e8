"""Baseline: the seed's job pattern, for many small jobs.

FastAPI `BackgroundTasks` parse the stored file in the API process after the 202 and record
the job's status in SQLite through SQLModel (default rollback journal, whose commits fsync;
the files are not fsync'd; no queue, no worker processes): what a first version of the
service would do. The parse is a plain Python loop (csv.reader, per-value typing, orjson per
record).

Run as `uvicorn tests.bench.seed_jobs_app:app`; files and the database go to INGEST_DATA_DIR.
"""

from __future__ import annotations

import csv
import os
import threading
import uuid
from pathlib import Path
from typing import Any

import orjson
from fastapi import BackgroundTasks, FastAPI, HTTPException, UploadFile
from sqlmodel import Field, Session, SQLModel, create_engine

DATA_DIR = Path(os.environ.get("INGEST_DATA_DIR", "."))
engine = create_engine(f"sqlite:///{DATA_DIR / 'seed.db'}")
# SQLite's default (rollback) journal fails a read-then-write transaction at once with
# "database is locked" when another thread writes: one lock keeps the baseline working.
db_lock = threading.Lock()
app = FastAPI()


class SeedJob(SQLModel, table=True):
    id: str = Field(primary_key=True)
    status: str
    rows: int | None = None
    error: str | None = None


SQLModel.metadata.create_all(engine)


def _typed(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _set(job_id: str, **values: Any) -> None:
    with db_lock, Session(engine) as session:
        job = session.get(SeedJob, job_id)
        assert job is not None
        for key, value in values.items():
            setattr(job, key, value)
        session.add(job)
        session.commit()


def _parse(job_id: str, path: Path) -> None:
    _set(job_id, status="running")
    try:
        rows = 0
        with open(path, encoding="utf-8", newline="") as source:
            reader = csv.reader(source)
            header = next(reader)
            with open(path.with_suffix(".ndjson"), "wb") as out:
                for record in reader:
                    out.write(
                        orjson.dumps(dict(zip(header, map(_typed, record), strict=False))) + b"\n"
                    )
                    rows += 1
    except Exception as exc:
        _set(job_id, status="failed", error=str(exc))
        return
    _set(job_id, status="succeeded", rows=rows)


@app.post("/jobs", status_code=202)
def submit(file: UploadFile, tasks: BackgroundTasks) -> dict[str, str]:
    job_id = uuid.uuid4().hex
    path = DATA_DIR / f"{job_id}.csv"
    with open(path, "wb") as out:
        out.write(file.file.read())
    with db_lock, Session(engine) as session:
        session.add(SeedJob(id=job_id, status="queued"))
        session.commit()
    tasks.add_task(_parse, job_id, path)
    return {"id": job_id, "status": "queued"}


@app.get("/jobs/{job_id}")
def job(job_id: str) -> dict[str, Any]:
    with db_lock, Session(engine) as session:
        found = session.get(SeedJob, job_id)
    if found is None:
        raise HTTPException(404)
    done = found.status in ("succeeded", "failed")
    return {"id": found.id, "status": found.status, "done": done, "rows": found.rows}


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
