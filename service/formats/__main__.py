"""`python -m service.formats <format> <result> <destination>`: one conversion in a process of
its own, the job's `result.columns` as JSON on stdin. The API runs conversions this way, so
that neither its event loop nor its memory carries Arrow's work.

Exit status: 0 written; 3 not a conversion (ValueError: an unknown format, a corrupt result);
4 reading or writing failed (OSError; 5 when the disk is full). The reason is on stderr.
"""

from __future__ import annotations

import errno
import json
import sys
from pathlib import Path

from service.formats.conversion import convert

EXIT_INVALID = 3
EXIT_IO = 4
EXIT_DISK_FULL = 5


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m service.formats <format> <result> <destination>", file=sys.stderr)
        return 2
    format, result, destination = argv
    columns = json.load(sys.stdin)
    try:
        convert(Path(result), columns, format, Path(destination))
    except ValueError as exc:
        print(f"ValueError: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except OSError as exc:
        print(f"OSError: {exc}", file=sys.stderr)
        return EXIT_DISK_FULL if exc.errno == errno.ENOSPC else EXIT_IO
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
