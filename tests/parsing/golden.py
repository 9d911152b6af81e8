"""Byte-for-byte guard: what parse_file writes for a fixed corpus, as digests.

The corpus is every input the parsing tests hand to `parse_file` (recorded once, stored
compressed in `golden/inputs.jsonl.gz`), the hostile samples, and generated files large
enough to span many blocks. For each, the digest holds the SHA-256 of the result NDJSON and
of the row errors, the result's summary (columns with their types and null counts, rows,
dialect), or the failure code and message. `golden/digests.json` is what the engine wrote
when the corpus was recorded; `test_golden.py` checks the engine still writes exactly that.

Not a test module. Run from the repo root:

    .venv/bin/python -m tests.parsing.golden record   # the inputs: runs tests/parsing once
    .venv/bin/python -m tests.parsing.golden write    # the digests, from the current engine

Only `write` after a change that is meant to alter the output, and say so in the commit.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import gzip
import hashlib
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from service.parsing import ParseFailure, ParseOptions, ParseProgress, parse_file
from tests.bench.datagen import Dataset, ensure
from tests.parsing.hostile import CASES
from tests.parsing.measure import write_csv, write_jsonl

HERE = Path(__file__).parent / "golden"
INPUTS = HERE / "inputs.jsonl.gz"
DIGESTS = HERE / "digests.json"
# Inputs recorded from the tests larger than this are left out: the generated files below
# cover size, and the stored corpus stays small.
MAX_RECORDED_BYTES = 256 * 1024
HOSTILE_SMALL_CHUNK = 4096


@dataclass(frozen=True)
class Sample:
    name: str
    data: bytes
    options: dict[str, Any]
    chunk_size: int | None

    @property
    def key(self) -> str:
        """Names the sample by what it is, so the same input recorded twice is one sample."""
        ident = hashlib.sha256(self.data)
        ident.update(orjson.dumps(self.options, option=orjson.OPT_SORT_KEYS))
        ident.update(str(self.chunk_size).encode())
        return f"{self.name}:{ident.hexdigest()[:24]}"


def recorded() -> list[Sample]:
    if not INPUTS.exists():
        return []
    samples = []
    with gzip.open(INPUTS, "rb") as lines:
        for line in lines:
            entry = orjson.loads(line)
            data = base64.b64decode(entry["data"])
            samples.append(Sample("recorded", data, entry["options"], entry["chunk_size"]))
    return samples


def hostile() -> Iterator[Sample]:
    for case in CASES:
        data = case.make()
        yield Sample(f"hostile {case.name}", data, dict(case.options), None)
        if case.chunked:
            yield Sample(f"hostile {case.name}", data, dict(case.options), HOSTILE_SMALL_CHUNK)


def generated(directory: Path) -> Iterator[Sample]:
    """Files that span many blocks: quotes, escapes and newlines in values, typed columns,
    at the default block size and at small blocks (boundaries everywhere)."""
    directory.mkdir(parents=True, exist_ok=True)
    measure_csv, measure_jsonl = directory / "measure.csv", directory / "measure.jsonl"
    write_csv(measure_csv, 30_000)
    write_jsonl(measure_jsonl, 30_000)
    bench_csv = ensure(Dataset("csv", rows=60_000), directory).path
    bench_jsonl = ensure(Dataset("jsonl", rows=30_000), directory).path
    # A late narrowing: an integer column that becomes a string near the end (write pass).
    late = b"n,s\n" + b"".join(b"%d,x%d\n" % (i, i) for i in range(40_000)) + b"007,y\n"
    files = [
        ("measure csv", measure_csv.read_bytes()),
        ("measure jsonl", measure_jsonl.read_bytes()),
        ("bench csv", bench_csv.read_bytes()),
        ("bench jsonl", bench_jsonl.read_bytes()),
        ("late narrowing csv", late),
    ]
    for name, data in files:
        for chunk_size in (None, 64 * 1024):
            yield Sample(f"generated {name}", data, {}, chunk_size)


def corpus(directory: Path) -> list[Sample]:
    unique: dict[str, Sample] = {}
    for sample in [*recorded(), *hostile(), *generated(directory)]:
        unique.setdefault(sample.key, sample)
    return list(unique.values())


async def digest(sample: Sample, directory: Path) -> dict[str, Any]:
    """What parse_file made of the sample, in a form that changes with any byte of it."""
    source = directory / "upload.bin"
    source.write_bytes(sample.data)
    result_path, errors_path = directory / "result.ndjson", directory / "errors.ndjson"
    result_path.unlink(missing_ok=True)
    errors_path.unlink(missing_ok=True)

    async def ignore(progress: ParseProgress) -> None:
        pass

    extra = {} if sample.chunk_size is None else {"chunk_size": sample.chunk_size}
    options = ParseOptions(**sample.options)
    try:
        result = await parse_file(source, result_path, errors_path, options, ignore, **extra)
    except ParseFailure as failure:
        return {"failure": failure.code, "message": failure.message}
    return {
        "result": _sha(result_path),
        # A parse without row errors writes no errors file: read as empty, as the API does.
        "errors": _sha(errors_path) if errors_path.exists() else hashlib.sha256(b"").hexdigest(),
        "rows": result.rows,
        "rows_failed": result.rows_failed,
        "summary": hashlib.sha256(orjson.dumps(dataclasses.asdict(result))).hexdigest(),
    }


def _sha(path: Path) -> str:
    if not path.exists():
        return "absent"
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def digests(samples: list[Sample], directory: Path) -> dict[str, dict[str, Any]]:
    return {sample.key: await digest(sample, directory) for sample in samples}


def load_digests() -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = orjson.loads(DIGESTS.read_bytes())
    return loaded


def _record_inputs() -> int:
    """Runs tests/parsing with parse_file's inner step wrapped, keeping each input it sees."""
    import pytest

    from service.parsing import engine

    seen: dict[str, dict[str, Any]] = {}
    inner = engine._parse

    def recording(
        source: Path, result_path: Path, errors_path: Path, options: ParseOptions, *rest: Any
    ) -> Awaitable[Any]:
        data = source.read_bytes()
        chunk_size = rest[-1]
        if len(data) <= MAX_RECORDED_BYTES:
            sample = Sample("recorded", data, dataclasses.asdict(options), chunk_size)
            sample_options = {k: v for k, v in sample.options.items() if v != _DEFAULTS[k]}
            sample = Sample("recorded", data, sample_options, _chunk(chunk_size))
            seen.setdefault(sample.key, {
                "data": base64.b64encode(data).decode(),
                "options": sample.options,
                "chunk_size": sample.chunk_size,
            })  # fmt: skip
        return inner(source, result_path, errors_path, options, *rest)

    engine._parse = recording  # type: ignore[assignment]
    try:
        here = Path(__file__).parent
        options = ["-q", "-p", "no:cacheprovider", "-m", "not slow"]
        status = pytest.main([*options, f"--ignore={here / 'test_golden.py'}", str(here)])
    finally:
        engine._parse = inner
    HERE.mkdir(exist_ok=True)
    with gzip.GzipFile(INPUTS, "wb", compresslevel=9, mtime=0) as out:
        for key in sorted(seen):
            out.write(orjson.dumps(seen[key]) + b"\n")
    print(f"{len(seen)} inputs recorded in {INPUTS}", file=sys.stderr)
    return int(status)


_DEFAULTS = dataclasses.asdict(ParseOptions())


def _chunk(chunk_size: int) -> int | None:
    from service.parsing.engine import DEFAULT_CHUNK_SIZE

    return None if chunk_size == DEFAULT_CHUNK_SIZE else chunk_size


def _write_digests() -> None:
    with tempfile.TemporaryDirectory() as directory:
        samples = corpus(Path(directory))
        found = asyncio.run(digests(samples, Path(directory)))
    DIGESTS.write_bytes(orjson.dumps(found, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    print(f"{len(found)} digests written to {DIGESTS}", file=sys.stderr)


COMMANDS: dict[str, Callable[[], object]] = {"record": _record_inputs, "write": _write_digests}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=sorted(COMMANDS))
    COMMANDS[parser.parse_args().command]()


if __name__ == "__main__":
    main()
