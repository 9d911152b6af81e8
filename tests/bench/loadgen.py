"""Closed-loop HTTP load generator, run as its own process: `python -m tests.bench.loadgen`.

Each connection sends the same pre-built GET as soon as the previous response has arrived,
so its cost per request is one write and one parse of the response head. Prints one JSON
object: requests, seconds, rps, latency percentiles in milliseconds, and error counts.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from tests.bench.wire import build_request, read_response


@dataclass
class Tally:
    latencies_ns: list[int] = field(default_factory=list)
    non_2xx: int = 0
    errors: int = 0


async def _connection(
    port: int, request: bytes, measure_from: int, stop_at: int, tally: Tally
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            sent = time.perf_counter_ns()
            if sent >= stop_at:
                return
            writer.write(request)
            try:
                status, _, keep_alive = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError):
                tally.errors += 1
                keep_alive = False
                status = 0
            received = time.perf_counter_ns()
            if sent >= measure_from and status:
                tally.latencies_ns.append(received - sent)
                if not 200 <= status < 300:
                    tally.non_2xx += 1
            if not keep_alive:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


async def run(
    port: int, path: str, connections: int, seconds: float, warmup: float
) -> dict[str, Any]:
    request = build_request("GET", path, port)
    start = time.perf_counter_ns()
    measure_from = start + int(warmup * 1e9)
    stop_at = measure_from + int(seconds * 1e9)
    tally = Tally()
    await asyncio.gather(
        *(_connection(port, request, measure_from, stop_at, tally) for _ in range(connections))
    )
    elapsed = (time.perf_counter_ns() - measure_from) / 1e9
    latencies = sorted(tally.latencies_ns)

    def percentile(q: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1e6

    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(0.50),
        "p90_ms": percentile(0.90),
        "p99_ms": percentile(0.99),
        "max_ms": latencies[-1] / 1e6 if latencies else float("nan"),
        "non_2xx": tally.non_2xx,
        "errors": tally.errors,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    args = parser.parse_args(argv)
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    try:
        import uvloop  # the cheaper loop, as uvicorn[standard] installs it

        loop_factory = uvloop.new_event_loop
    except ImportError:
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(run(args.port, args.path, args.connections, args.seconds, args.warmup))
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")


if __name__ == "__main__":
    main()
