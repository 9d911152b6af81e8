"""GET /jobs/{id}/events: the job as Server-Sent Events until it finishes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from service import watch
from service.api.deps import OwnerDep, RuntimeDep
from service.api.jobs import PROBLEM
from service.errors import NotFound
from service.models import JobPublic

router = APIRouter(prefix="/jobs", tags=["jobs"])

# A comment line this often keeps proxies from closing a quiet stream.
KEEPALIVE_S = 15.0


def _event(name: str, job: JobPublic) -> bytes:
    return f"event: {name}\nid: {watch.etag_of(job)}\ndata: {job.model_dump_json()}\n\n".encode()


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`progress` events with the job on every change, then one `done` event",
        },
        401: PROBLEM,
        404: PROBLEM,
    },
)
async def job_events(job_id: str, runtime: RuntimeDep, owner: OwnerDep) -> StreamingResponse:
    """Follow a job: a `progress` event per change, a final `done` event, then the end."""
    first = await watch.load(runtime.sessions, job_id, owner)

    async def stream() -> AsyncIterator[bytes]:
        job = first
        if not job.done:
            yield _event("progress", job)
        while not job.done:
            since = watch.etag_of(job)
            try:
                job = await watch.next_version(
                    runtime.sessions,
                    runtime.changes,
                    job_id,
                    owner,
                    since=since,
                    timeout=KEEPALIVE_S,
                )
            except NotFound:
                return  # deleted while being followed
            if job.done:
                break
            yield _event("progress", job) if watch.etag_of(job) != since else b": keep-alive\n\n"
        yield _event("done", job)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
