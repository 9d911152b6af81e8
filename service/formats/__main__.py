"""`python -m service.formats <format> <result> <destination>`: one conversion in a process of
its own, the job's `result.columns` as JSON on stdin. The API runs conversions this way, so
that neither its event loop nor its memory carries Arrow's work.

`python -m service.formats --spare`: the same, for a process started ahead of need; the
request comes on stdin once the process is warm (see `spare.py` and `warm_up.py`).

Exit status: 0 written (or a spare's stdin closed empty); 3 not a conversion (ValueError: an
unknown format, a corrupt result); 4 reading or writing failed (OSError; 5 when the disk is
full). The reason is on stderr.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
from pathlib import Path

from service.formats import spare
from service.without_pandas import keep_pandas_out

EXIT_INVALID = 3
EXIT_IO = 4
EXIT_DISK_FULL = 5
SPARE = "--spare"


def main(argv: list[str]) -> int:
    keep_pandas_out()  # before pyarrow is imported: see `service.without_pandas`
    if argv == [SPARE]:
        # Until it is taken, Ctrl-C in a terminal (SIGINT to the whole process group) is not
        # for the spare: the API stops it, by closing its stdin.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        from service.formats.warm_up import warm_up

        warm_up()
        request = spare.wait_for_request(sys.stdin.buffer, sys.stdout.buffer)
        if request is None:
            return 0
        signal.signal(signal.SIGINT, signal.default_int_handler)
        return run(request.format, request.result, request.destination, request.columns)
    if len(argv) != 3:
        print(
            "usage: python -m service.formats <format> <result> <destination>\n"
            "       python -m service.formats --spare",
            file=sys.stderr,
        )
        return 2
    format, result, destination = argv
    return run(format, Path(result), Path(destination), json.load(sys.stdin))


def run(format: str, result: Path, destination: Path, columns: list[dict[str, object]]) -> int:
    """One conversion; its exit status."""
    from service.formats.conversion import convert

    try:
        convert(result, columns, format, destination)
    except ValueError as exc:
        print(f"ValueError: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except OSError as exc:
        print(f"OSError: {exc}", file=sys.stderr)
        return EXIT_DISK_FULL if exc.errno == errno.ENOSPC else EXIT_IO
    return 0


if __name__ == "__main__":
    status = main(sys.argv[1:])
    # The file is written, or removed; what is left is tearing down an interpreter that holds
    # Arrow and its threads, 45-60 ms that the request waiting for this process would pay.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
