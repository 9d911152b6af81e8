"""`python -m service`: run the API under uvicorn with the service's own JSON logging."""

from __future__ import annotations

import argparse
import os

import uvicorn

from service.config import get_settings
from service.logs import configure_logging

# Open long-polls and event streams are cut after this long at shutdown, so a SIGTERM
# never waits on a client that follows a slow job.
GRACEFUL_SHUTDOWN_S = 10


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args()
    configure_logging(get_settings().log_level)
    uvicorn.run(
        "service.main:app",
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )


if __name__ == "__main__":
    main()
