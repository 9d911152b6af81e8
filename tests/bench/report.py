"""The report: machine facts, then one Markdown table per section."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil

PASS = "✅"
MISS = "❌ MISSED"


@dataclass(frozen=True)
class Check:
    """One target: its wording for the table and whether it was met."""

    target: str
    met: bool


@dataclass
class Row:
    measurement: str
    value: str
    baselines: list[str] = field(default_factory=list)
    ratios: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def cells(self) -> list[str]:
        missed = [c.target for c in self.checks if not c.met]
        if not self.checks:
            result = "—"
        elif missed:
            result = (f"{MISS}: " + "; ".join(missed)) if len(self.checks) > 1 else MISS
        else:
            result = PASS
        targets = "; ".join(c.target for c in self.checks) or "—"
        return [
            self.measurement,
            self.value,
            "; ".join(self.baselines) or "—",
            "; ".join(self.ratios) or "—",
            targets,
            result,
        ]


def not_measured(measurement: str, reason: str, targets: list[str] | None = None) -> Row:
    """A row for a figure that could not be measured; any target it had counts as missed."""
    checks = [Check(t, False) for t in targets or []]
    return Row(measurement, f"not measured ({reason})", checks=checks)


def table(rows: list[Row]) -> str:
    header = ["measurement", "value", "baseline(s)", "ratio", "target", "result"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [c.replace("|", "\\|").replace("\n", " ") for c in row.cells()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mb(size: float) -> str:
    return f"{size / 1e6:,.0f} MB" if size >= 10e6 else f"{size / 1e6:,.1f} MB"


def rate(value: float, unit: str = "MB/s") -> str:
    if value >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:,.1f} {unit}" if value >= 10 else f"{value:,.2f} {unit}"


def ratio(value: float, of: str) -> str:
    return f"{value:.2f}× {of}"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    memory = psutil.virtual_memory().total / 1024**3
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, {memory:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def revision(repo: Path) -> str:
    """The commit the service was measured at, marked dirty when service/ has local changes."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, check=False, timeout=10
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "no commit"
    dirty = git("status", "--porcelain", "--", "service", "migrations")
    return f"{commit} (uncommitted changes in service/)" if dirty else commit


def document(
    title: str, header_lines: list[str], sections: list[tuple[str, list[Row], list[str]]]
) -> str:
    parts = [f"# {title}", "", *[f"- {line}" for line in header_lines], ""]
    for heading, rows, notes in sections:
        parts += [f"## {heading}", "", table(rows), ""]
        parts += [f"- {note}" for note in notes]
        if notes:
            parts.append("")
    return "\n".join(parts)


def today() -> str:
    return datetime.now().strftime("%Y-%m-%d")
