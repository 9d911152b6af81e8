"""A real Chromium driven by Playwright, for the tests of the web page.

Debian's `chromium` package is used: Playwright's own browser download is not available
here. Every page opened through `watched_page` fails its test if it logs an error, throws,
or sends a request anywhere but the service.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Error,
    Locator,
    Page,
    Route,
    ViewportSize,
)

from tests.apps import ROOT
from tests.backing_services import IN_CI

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")
# Without the background-networking flags Chromium calls home at start, which a closed
# network refuses; the others keep a headless run quiet and deterministic.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "data" / "screenshots"
WIDE: ViewportSize = {"width": 1280, "height": 900}
NARROW: ViewportSize = {"width": 375, "height": 812}


def find_chromium() -> str | None:
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def chromium_missing() -> None:
    """Skip without a browser, except in CI, where that is a failure (like the services)."""
    if IN_CI:
        pytest.fail("Chromium is required in CI but is not installed (apt-get install chromium)")
    pytest.skip("Chromium is not installed (apt-get install chromium)")


@dataclass
class PageWatch:
    """What a page did that a test must notice: errors, and requests that left the service."""

    origin: str
    allowed_console: tuple[str, ...] = ()
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    request_urls: list[str] = field(default_factory=list)

    def guard(self, route: Route) -> None:
        url = route.request.url
        self.request_urls.append(url)
        if url == self.origin or url.startswith(f"{self.origin}/"):
            route.continue_()
        else:
            self.foreign_requests.append(url)
            route.abort("blockedbyclient")

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not any(
            allowed in message.text for allowed in self.allowed_console
        ):
            self.console_errors.append(f"{message.text} ({message.location.get('url')})")

    def on_page_error(self, error: Error) -> None:
        self.page_errors.append(str(error))

    def check(self) -> None:
        assert self.foreign_requests == [], "requests left the service"
        assert self.page_errors == [], "the page threw"
        assert self.console_errors == [], "the page logged errors"


@contextmanager
def watched_page(
    browser: Browser,
    origin: str,
    viewport: ViewportSize | None = None,
    allowed_console: tuple[str, ...] = (),
) -> Iterator[tuple[Page, PageWatch]]:
    """A page in a fresh browser context (its own sessionStorage), checked when it closes."""
    watch = PageWatch(origin, allowed_console)
    context = browser.new_context(viewport=viewport or WIDE, accept_downloads=True)
    context.set_default_timeout(20_000)
    context.route("**/*", watch.guard)
    page = context.new_page()
    page.on("console", watch.on_console)
    page.on("pageerror", watch.on_page_error)
    try:
        yield page, watch
        watch.check()
    finally:
        context.close()


def choose_files(page: Page, *paths: Path) -> None:
    """Pick files the way a person does: click the button, answer the file chooser."""
    with page.expect_file_chooser() as chooser:
        page.get_by_text("Choose files", exact=True).click()
    chooser.value.set_files(list(paths))


def drop_files(target: Locator, files: list[tuple[str, str, str]]) -> None:
    """Drop (name, text, media type) files on `target` with real drag events."""
    data_transfer = target.page.evaluate_handle(
        """(files) => {
            const transfer = new DataTransfer();
            for (const [name, text, type] of files) {
                transfer.items.add(new File([text], name, { type }));
            }
            return transfer;
        }""",
        files,
    )
    for event in ("dragenter", "dragover", "drop"):
        target.dispatch_event(event, {"dataTransfer": data_transfer})


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot for a person to look at after the run (git-ignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=path, full_page=True)
    return path
