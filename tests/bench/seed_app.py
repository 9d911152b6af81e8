"""Baseline: the naive FastAPI upload handler, which reads the whole file and then writes it.

Run as `uvicorn tests.bench.seed_app:app`; files go to INGEST_DATA_DIR.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from fastapi import FastAPI, Request, UploadFile

app = FastAPI()


def _target() -> Path:
    return Path(os.environ.get("INGEST_DATA_DIR", ".")) / f"{uuid.uuid4().hex}.upload"


@app.post("/upload", status_code=202)
async def upload(file: UploadFile) -> dict[str, int]:
    """Multipart: `await file.read()`, then write the bytes."""
    data = await file.read()
    path = _target()
    path.write_bytes(data)
    path.unlink()
    return {"size": len(data)}


@app.post("/upload-raw", status_code=202)
async def upload_raw(request: Request) -> dict[str, int]:
    """Raw body: `await request.body()`, then write the bytes."""
    data = await request.body()
    path = _target()
    path.write_bytes(data)
    path.unlink()
    return {"size": len(data)}
