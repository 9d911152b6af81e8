"""`python -m service`: run the API under uvicorn with the service's own JSON logging."""

from __future__ import annotations

import argparse
import os
import sys
from types import FrameType

import uvicorn

from service.api.protocol import protocol_with_limits
from service.config import ConfigError, Settings, get_settings
from service.logs import configure_logging
from service.runtime import Runtime
from service.startup import (
    DataDirInUse,
    MissingDependency,
    NotMigrated,
    check_dependencies,
    check_migrated,
    lock_data_dir,
)

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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args()
    settings = _ready_settings()
    configure_logging(settings.log_level)
    config = uvicorn.Config(
        "service.main:app",
        host=args.host,
        port=args.port,
        http=protocol_with_limits(settings.max_header_bytes, settings.header_timeout_s),
        log_config=None,
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    IngestServer(config).run()


def _ready_settings() -> Settings:
    """Valid settings, the libraries they call for, this instance's claim on the data dir, a
    migrated database; or one line on stderr saying what is wrong, and exit status 2."""
    try:
        settings = get_settings()
        check_dependencies(settings)
        if settings.executor == "inprocess":
            lock_data_dir(settings.data_dir)
        check_migrated(settings.sqlalchemy_url)
    except (ConfigError, MissingDependency, DataDirInUse, NotMigrated) as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        sys.exit(2)
    return settings


if __name__ == "__main__":
    main()
