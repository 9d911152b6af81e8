"""uvicorn serving the app, as `python -m service` runs it: the service's own HTTP protocol
limits and JSON logging, and the service told the moment a stop is asked for."""

from __future__ import annotations

from types import FrameType

import uvicorn

from service.api.protocol import protocol_with_limits
from service.config import Settings
from service.logs import configure_logging
from service.runtime import Runtime

# Open long-polls and event streams are cut after this long at shutdown, so a SIGTERM
# never waits on a client that follows a slow job.
GRACEFUL_SHUTDOWN_S = 10
# An idle keep-alive connection is closed after this long (uvicorn's default, made explicit).
KEEP_ALIVE_S = 5


class IngestServer(uvicorn.Server):
    """uvicorn, telling the service the moment a stop is asked for.

    uvicorn runs the app's shutdown only after its connections have drained; by then new
    uploads should long have been refused and no new job started.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        app = self.config.loaded_app
        while not hasattr(app, "state") and hasattr(app, "app"):  # uvicorn's own wrappers
            app = app.app
        runtime = getattr(getattr(app, "state", None), "runtime", None)
        if isinstance(runtime, Runtime):
            runtime.begin_shutdown()
        super().handle_exit(sig, frame)


def serve(settings: Settings, host: str, port: int) -> None:
    """Serve until stopped (Ctrl-C, SIGTERM)."""
    configure_logging(settings.log_level)
    config = uvicorn.Config(
        "service.main:app",
        host=host,
        port=port,
        http=protocol_with_limits(settings.max_header_bytes, settings.header_timeout_s),
        log_config=None,
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    IngestServer(config).run()
