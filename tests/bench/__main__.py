"""`python -m tests.bench [--quick] [--only upload,ingest,polling,small,scaling,formats,tus]`."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from functools import partial
from pathlib import Path

from tqdm import tqdm

from tests.bench import report, servers
from tests.bench.datagen import Dataset
from tests.bench.profile import FULL, QUICK
from tests.bench.sections import Context, Section, Step
from tests.bench.sections.formats import FormatsSection
from tests.bench.sections.ingest import IngestSection
from tests.bench.sections.polling import PollingSection
from tests.bench.sections.resumable import ResumableSection
from tests.bench.sections.scaling import ScalingSection
from tests.bench.sections.smalljobs import SmallJobsSection
from tests.bench.sections.upload import UploadSection

SECTIONS: tuple[type[Section], ...] = (
    UploadSection,
    IngestSection,
    PollingSection,
    SmallJobsSection,
    ScalingSection,
    FormatsSection,
    ResumableSection,
)
REPO = Path(__file__).resolve().parents[2]
BAR_FORMAT = "{desc:<44.44} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    keys = [s.key for s in SECTIONS]
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench",
        description="Measure the ingest service against its baselines, side by side.",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, shorter windows")
    parser.add_argument(
        "--only",
        default=",".join(keys),
        help=f"comma-separated sections to run, of: {', '.join(keys)} (default: all)",
    )
    parser.add_argument(
        "--app",
        help="measure this ASGI app under uvicorn instead of `python -m service` (make serve)",
    )
    parser.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not run `alembic upgrade head` before starting the app",
    )
    parser.add_argument(
        "--output", type=Path, help="where to write the report (default: data/bench/DATE.md)"
    )
    args = parser.parse_args(argv)
    args.sections = [k.strip() for k in args.only.split(",") if k.strip()]
    unknown = sorted(set(args.sections) - set(keys))
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every server started so far is stopped and cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    profile = QUICK if args.quick else FULL
    bench_dir = REPO / "data" / "bench"
    ctx = Context(REPO, bench_dir, profile, args.app, not args.no_migrate)
    sections = [cls(ctx) for cls in SECTIONS if cls.key in args.sections]
    started = time.monotonic()
    load_start = os.getloadavg()[0]
    failures = run_steps(ctx, sections)
    minutes = (time.monotonic() - started) / 60
    date = report.today()
    header = [
        f"Date: {date}",
        f"Machine: {report.machine()}",
        f"Service: `python {' '.join(servers.service_command(args.app)[1:])}` at "
        f"{report.revision(REPO)}",
        f"Run: `{'make bench-quick' if args.quick else 'make bench'}` ({profile.name} profile), "
        f"sections {', '.join(s.key for s in sections)}, {minutes:.1f} min",
        f"Load average (1 min) at start {load_start:.2f}, at end {os.getloadavg()[0]:.2f}: "
        "other work on the machine moves absolute figures; ratios hold better.",
        "Units: MB = 10⁶ bytes. Ratios compare figures measured in this same run.",
    ]
    body = [(s.title, s.rows(), s.notes) for s in sections]
    text = report.document(f"Benchmarks {date}", header, body)
    output = args.output or bench_dir / f"{date}{'-quick' if args.quick else ''}.md"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text + "\n")
    print(text)
    print(f"Written to {output.relative_to(REPO) if output.is_relative_to(REPO) else output}")
    return 1 if failures else 0


def run_steps(ctx: Context, sections: list[Section]) -> list[str]:
    """Generate the data, then run every section's steps under one progress bar.

    A failed step is reported and the run goes on; each section's servers are stopped
    whatever happens. Returns the failures.
    """
    steps = _data_steps(ctx, sections)
    owners: list[Section | None] = [None] * len(steps)
    for section in sections:
        planned = section.steps()
        steps += planned
        owners += [section] * len(planned)
    failures: list[str] = []
    bar = tqdm(total=sum(s.weight for s in steps), bar_format=BAR_FORMAT, dynamic_ncols=True)
    try:
        for step, owner in zip(steps, owners, strict=True):
            bar.set_description_str(step.label)
            try:
                step.run()
            except Exception as exc:
                message = f"{step.label}: {type(exc).__name__}: {exc}"
                failures.append(message)
                if owner is not None:
                    owner.notes.append(f"Failed: {_first_and_last_line(message)}")
                tqdm.write(f"FAILED {message}", file=sys.stderr)
            bar.update(step.weight)
    finally:
        bar.close()
        for section in sections:
            section.close()
    return failures


def _first_and_last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if len(lines) < 2 else f"{lines[0]} … {lines[-1]}"


def _data_steps(ctx: Context, sections: list[Section]) -> list[Step]:
    needed: list[Dataset] = []
    for section in sections:
        needed += [d for d in section.datasets() if d not in needed]
    return [
        Step(f"data: {d.label}", partial(ctx.data, d), max(1, d.approx_size // 200_000_000))
        for d in needed
    ]


if __name__ == "__main__":
    sys.exit(main())
