"""GET /jobs/{id}/events: the job as Server-Sent Events until it finishes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from service.api import examples
from service.api.deps import OwnerDep, RuntimeDep
from service.api.responses import PROBLEM
from service.errors import NotFound
from service.jobs.views import Snapshot

router = APIRouter(prefix="/jobs", tags=["jobs"])

# Each event of the stream (OpenAPI 3.1: the schema of an event stream describes one event).
EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"enum": ["progress", "done", "deleted"]},
        "id": {"type": "string", "description": "The job's ETag"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {
                "anyOf": [
                    {"$ref": "#/components/schemas/JobPublic"},
                    {
                        "type": "object",
                        "required": ["id"],
                        "properties": {"id": {"type": "string"}},
                        "description": "`deleted`: the job's id",
                    },
                ]
            },
        },
    },
}
# A comment line this often keeps proxies from closing a quiet stream.
KEEPALIVE_S = 15.0


def _event(name: str, snapshot: Snapshot) -> bytes:
    return b"event: %s\nid: %s\ndata: %s\n\n" % (
        name.encode(),
        snapshot.etag.encode(),
        snapshot.body,
    )


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    operation_id="followJob",
    responses={
        200: {
            "content": {"text/event-stream": {"schema": EVENT, "example": examples.EVENTS}},
            "description": "`progress` events with the job on every change, then one terminal "
            "`done` event (or `deleted`, if the job is deleted meanwhile)",
        },
        401: PROBLEM,
        404: PROBLEM,
    },
)
async def job_events(job_id: str, runtime: RuntimeDep, owner: OwnerDep) -> StreamingResponse:
    """Follow a job: a `progress` event per change, a final `done` event, then the end."""
    first = await runtime.views.get(job_id, owner)

    async def stream() -> AsyncIterator[bytes]:
        snapshot = first
        if not snapshot.job.done:
            yield _event("progress", snapshot)
        while not snapshot.job.done:
            since = snapshot.etag
            try:
                snapshot = await runtime.views.next_version(
                    job_id, owner, since=since, timeout=KEEPALIVE_S
                )
            except NotFound:
                yield b'event: deleted\ndata: {"id": "%s"}\n\n' % job_id.encode()
                return
            if snapshot.job.done:
                break
            yield _event("progress", snapshot) if snapshot.etag != since else b": keep-alive\n\n"
        yield _event("done", snapshot)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
