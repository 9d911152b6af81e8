"""The README's curl examples, read out of the README itself, and a check of their output.

`examples()` finds every curl command the README shows: in ```console blocks (`$ curl …`
followed by its output) and ```sh blocks (`curl …`, optionally followed by output lines or a
`# NNN …` line with the status and body to expect), and in inline code. A status the README
promises in a comment (`# 202`, `# 200, same job`) is the status to expect; with none, any
2xx. `VAR=value make serve` in a block means that block's commands run against a server
started with that environment.

`check_output()` compares what curl printed with what the README shows: an `HTTP/1.1 …`
status line exactly, header names, and JSON by structure, where `…` stands for whatever the
README leaves out (`"id":"8b0e…"` is any string starting `8b0e`, `, … }` is members not shown);
other text line by line, `…` ending what must match and a Prometheus sample's value left free.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

FENCE = re.compile(r"^```(\w*)\s*$")
STATUS = re.compile(r"\b([1-5][0-9]{2})\b")
ELLIPSIS = "…"
PARTIAL = "\u0000partial"
PREFIX = "\u0000prefix:"
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_SERVE = re.compile(r"^((?:[A-Z_]+=\S+\s+)+)make serve\b")
# A Prometheus sample: the README's value is an example, the series is what must be there.
_SAMPLE = re.compile(r"^([a-zA-Z_][a-zA-Z0-9_]*(?:\{[^}]*\})?) [0-9.eE+-]+$")


@dataclass
class Example:
    """One curl command the README shows, with what it says should come of it."""

    command: str
    expected: str = ""
    statuses: set[int] = field(default_factory=set)
    server_env: dict[str, str] = field(default_factory=dict)
    block: int = 0

    @property
    def safe_to_repeat(self) -> bool:
        """A plain GET: running it again while waiting for the shown output is harmless."""
        return not re.search(r"\s(-X|-F|-T|-d|--data\S*|--upload-file)\s", f" {self.command} ")


def _join_continuations(lines: list[str]) -> list[str]:
    joined: list[str] = []
    pending = ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1].rstrip() + " "
            continue
        joined.append(pending + line.strip() if pending else line)
        pending = ""
    return joined


def _split_comment(line: str) -> tuple[str, str]:
    """A shell line and its trailing comment (a `#` outside quotes, after a space)."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip(), line[index + 1 :].strip()
    return line.rstrip(), ""


def _statuses(text: str) -> set[int]:
    return {int(code) for code in STATUS.findall(text)}


def _blocks(readme: str) -> list[tuple[str, list[str]]]:
    blocks: list[tuple[str, list[str]]] = []
    language: str | None = None
    lines: list[str] = []
    for line in readme.splitlines():
        fence = FENCE.match(line)
        if fence and language is None:
            language, lines = fence.group(1), []
        elif line.startswith("```") and language is not None:
            blocks.append((language, lines))
            language = None
        elif language is not None:
            lines.append(line)
    return blocks


def _console_examples(lines: list[str], block: int) -> list[Example]:
    found: list[Example] = []
    for line in _join_continuations(lines):
        if line.startswith("$ "):
            command, comment = _split_comment(line[2:])
            found.append(Example(command, statuses=_statuses(comment), block=block))
        elif found:
            found[-1].expected += line + "\n"
    return [example for example in found if example.command.startswith("curl ")]


def _sh_examples(lines: list[str], block: int) -> list[Example]:
    found: list[Example] = []
    env: dict[str, str] = {}
    comments: list[str] = []
    for line in _join_continuations(lines):
        command, comment = _split_comment(line)
        serve = _SERVE.match(command)
        if serve:
            env = dict(pair.split("=", 1) for pair in serve.group(1).split())
        elif command.startswith("curl "):
            statuses = _statuses(comment) | _statuses(" ".join(comments))
            found.append(Example(command, statuses=statuses, block=block))
        elif not command and comment and found and STATUS.match(comment):
            # `# 422 {"title": …}` under a command: the status and body it gets.
            found[-1].statuses = _statuses(comment[:3])
            found[-1].expected += comment[3:].strip() + "\n"
        elif command and found and not comments:
            found[-1].expected += line + "\n"
        comments = [comment] if not command and comment else []
    for example in found:
        example.server_env = env
    return found


def examples(readme: str) -> list[Example]:
    """Every curl example of the README, in order (block examples, then inline ones)."""
    found: list[Example] = []
    for block, (language, lines) in enumerate(_blocks(readme), start=1):
        if language == "console":
            found += _console_examples(lines, block)
        elif language in ("sh", "bash", "shell"):
            found += _sh_examples(lines, block)
    return found + inline_examples(readme)


def inline_examples(readme: str) -> list[Example]:
    """`curl … localhost:…` in running text (`curl -T file URL` is prose, not an example); a
    status right after it in the same sentence is expected."""
    prose = re.sub(r"^```.*?^```", "", readme, flags=re.DOTALL | re.MULTILINE)
    found = []
    for match in re.finditer(r"`(curl [^`]*localhost:[^`]*)`([^.`]*)", prose):
        found.append(Example(match.group(1), statuses=_statuses(match.group(2))))
    return found


def code_lines(readme: str) -> list[str]:
    """Every line inside the README's fenced code blocks."""
    return [line for _, lines in _blocks(readme) for line in lines]


# What curl printed, against what the README shows.


def _mark_ellipses(text: str) -> str:
    """JSON as the README writes it, made parseable: `"ab…"` → a prefix marker, a bare `…`
    (members left out) → a member saying the object is partial."""

    def string(match: re.Match[str]) -> str:
        value = match.group(0)
        if ELLIPSIS not in value:
            return value
        prefix = value[1:].split(ELLIPSIS, 1)[0]
        return orjson.dumps(PREFIX + prefix).decode()

    parts: list[str] = []
    position = 0
    for match in _JSON_STRING.finditer(text):
        parts.append(text[position : match.start()].replace(ELLIPSIS, f'"{PARTIAL}":true'))
        parts.append(string(match))
        position = match.end()
    parts.append(text[position:].replace(ELLIPSIS, f'"{PARTIAL}":true'))
    return "".join(parts).replace("\u0000", "\\u0000")


def _documents(text: str) -> list[Any] | None:
    """The JSON documents in `text`: one (possibly over several lines), or one a line."""
    text = text.strip()
    if not text:
        return []
    try:
        return [orjson.loads(text)]
    except orjson.JSONDecodeError:
        pass
    try:
        return [orjson.loads(line) for line in text.splitlines() if line.strip()]
    except orjson.JSONDecodeError:
        return None


def json_subset(expected: Any, actual: Any, where: str = "$") -> None:
    """`actual` has everything `expected` shows; an object is complete unless it was partial."""
    if isinstance(expected, str) and expected.startswith(PREFIX):
        prefix = expected[len(PREFIX) :]
        assert isinstance(actual, str) and actual.startswith(prefix), f"{where}: {actual!r}"
    elif isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        shown = {key: value for key, value in expected.items() if key != PARTIAL}
        if PARTIAL not in expected:
            assert set(actual) == set(shown), f"{where}: keys {sorted(actual)} != {sorted(shown)}"
        for key, value in shown.items():
            assert key in actual, f"{where}: no {key!r} in {sorted(actual)}"
            json_subset(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: {actual!r}"
        for index, (item, got) in enumerate(zip(expected, actual, strict=True)):
            json_subset(item, got, f"{where}[{index}]")
    else:
        assert expected == actual, f"{where}: expected {expected!r}, got {actual!r}"


def _split_http(text: str) -> tuple[list[str], str]:
    """Status line and header lines of an `-i` output, and the body."""
    if not text.startswith("HTTP/"):
        return [], text
    head, _, body = text.replace("\r\n", "\n").partition("\n\n")
    return head.splitlines(), body


def check_output(expected: str, actual: str) -> None:
    """Raise AssertionError unless curl's output shows what the README shows."""
    if not expected.strip():
        return
    expected_head, expected_body = _split_http(expected)
    actual_head, actual_body = _split_http(actual)
    if expected_head:
        assert actual_head, f"expected a response head, got {actual[:200]!r}"
        assert actual_head[0].strip() == expected_head[0].strip(), actual_head[0]
        names = {line.split(":", 1)[0].strip().lower() for line in actual_head[1:]}
        for line in expected_head[1:]:
            assert line.split(":", 1)[0].strip().lower() in names, f"no header {line!r}"
    wanted = _documents(_mark_ellipses(expected_body))
    if wanted:
        got = _documents(actual_body)
        assert got is not None, f"expected JSON, got {actual_body[:300]!r}"
        assert len(got) == len(wanted), f"{len(got)} documents, README shows {len(wanted)}"
        for index, (document, shown) in enumerate(zip(got, wanted, strict=True)):
            json_subset(shown, document, f"document {index + 1}")
        return
    actual_lines = [line.rstrip() for line in actual_body.splitlines()]
    for line in expected_body.splitlines():
        if not line.strip() or line.strip() == ELLIPSIS:
            continue
        sample = _SAMPLE.match(line.rstrip())
        if ELLIPSIS in line:
            start: str | None = line.split(ELLIPSIS, 1)[0]
        else:
            start = sample.group(1) + " " if sample else None
        if start is not None:
            assert any(got.startswith(start) for got in actual_lines), f"no line like {line!r}"
        else:
            assert line.rstrip() in actual_lines, f"no line {line!r} in {actual_body[:500]!r}"
