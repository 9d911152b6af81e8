"""`python -m service`: check the settings and the database, then serve the API under uvicorn.

The single-machine deployment's worker forkserver is started as soon as the data dir is
ours, before the API's own modules are imported: the two imports take about a second of CPU
each and run side by side where there is a spare core (`worker_processes`).
"""

from __future__ import annotations

import argparse
import os
import sys

from service.config import ConfigError, Settings, get_settings
from service.runner.executors.worker_processes import start_forkserver
from service.startup import (
    DataDirInUse,
    MissingDependency,
    NotMigrated,
    check_dependencies,
    check_migrated,
    lock_data_dir,
)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m service", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args()
    settings = _ready_settings()
    # Imported only now, beside the forkserver's imports (see the module text).
    from service.serving import serve

    serve(settings, args.host, args.port)


def _ready_settings() -> Settings:
    """Valid settings, the libraries they call for, this instance's claim on the data dir, a
    migrated database; or one line on stderr saying what is wrong, and exit status 2."""
    try:
        settings = get_settings()
        if settings.executor == "inprocess":
            lock_data_dir(settings.data_dir)
            start_forkserver()
        check_dependencies(settings)
        check_migrated(settings.sqlalchemy_url)
    except (ConfigError, MissingDependency, DataDirInUse, NotMigrated) as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        sys.exit(2)
    return settings


if __name__ == "__main__":
    main()
