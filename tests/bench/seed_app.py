"""Baseline: the naive FastAPI upload handler, which reads the whole file and then writes it.

Run as `uvicorn tests.bench.seed_app:app`; files go to INGEST_DATA_DIR.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from fastapi import FastAPI, Request, UploadFile

app = FastAPI()


def _store(data: bytes) -> dict[str, int]:
    """Write the bytes, as a seed app would, then drop them so runs leave nothing behind."""
    path = Path(os.environ.get("INGEST_DATA_DIR", ".")) / f"{uuid.uuid4().hex}.upload"
    path.write_bytes(data)
    path.unlink()
    return {"size": len(data)}


@app.post("/upload", status_code=202)
async def upload(file: UploadFile) -> dict[str, int]:
    """Multipart: `await file.read()`, then write the bytes."""
    return _store(await file.read())


@app.post("/upload-raw", status_code=202)
async def upload_raw(request: Request) -> dict[str, int]:
    """Raw body: `await request.body()`, then write the bytes."""
    return _store(await request.body())
