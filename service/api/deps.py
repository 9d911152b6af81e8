"""Dependencies the routes declare, as Annotated aliases.

They are `async def` although they never await: FastAPI runs plain `def` dependencies in a
thread pool, a costly trip for work this small.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request

from service.config import Settings
from service.errors import Unauthorized
from service.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    runtime = request.app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def settings_of(runtime: RuntimeDep) -> Settings:
    return runtime.settings


SettingsDep = Annotated[Settings, Depends(settings_of)]


def owner_of(key: str) -> str:
    """A stable, non-reversible name for an API key, stored with each of its jobs."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


async def get_owner(request: Request, settings: SettingsDep) -> str:
    """The caller's identity: '' when API keys are off, else the fingerprint of its key."""
    if not settings.api_keys:
        return ""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token:
        presented = token.encode()
        # Compare against every key, in constant time, so timing reveals nothing.
        matched = [hmac.compare_digest(presented, key.encode()) for key in settings.api_keys]
        if any(matched):
            return owner_of(token)
    raise Unauthorized(
        "An API key is required: send 'Authorization: Bearer <key>'.",
        headers={"WWW-Authenticate": 'Bearer realm="ingest"'},
    )


OwnerDep = Annotated[str, Depends(get_owner)]
