"""The web page at `/`, driven in a real Chromium against a real `python -m service`."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, Route, expect, sync_playwright

from tests.browser import (
    CHROMIUM_FLAGS,
    NARROW,
    WIDE,
    choose_files,
    chromium_missing,
    drop_files,
    find_chromium,
    screenshot,
    watched_page,
)
from tests.samples import MiB, assert_succeeded_with_csv, write_csv
from tests.server import ServiceProcess, StartedProcesses

pytestmark = pytest.mark.slow

API_KEY = "page-test-key"
# The README's example: a decimal written as 9.50, an empty amount (null), a quoted comma
# and a short last row on line 6.
ORDERS = (
    b"order_id,customer,amount,paid,ordered_on\n"
    b"1,ada,9.50,true,2026-11-01\n"
    b"2,grace,12,false,2026-11-02\n"
    b"3,linus,,true,2026-11-03\n"
    b'4,"Hopper, Grace",7.25,true,2026-11-04\n'
    b"5,ken\n"
)


# ---- Fixtures: one browser for the module, one server per configuration --------------------


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    executable = find_chromium()
    if executable is None:
        chromium_missing()
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    chromium = playwright_driver.chromium.launch(
        executable_path=find_chromium(), args=CHROMIUM_FLAGS, headless=True
    )
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with StartedProcesses() as started:
        yield started.service(tmp_path_factory.mktemp("web") / "data")


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    data = tmp_path_factory.mktemp("web-keyed") / "data"
    with StartedProcesses() as started:
        yield started.service(data, INGEST_API_KEYS=f"other-key,{API_KEY}")


@pytest.fixture(scope="module")
def orders_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("files") / "orders.csv"
    path.write_bytes(ORDERS)
    return path


@pytest.fixture(scope="module")
def large_gzip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 MB gzip of a 1 GB CSV: quick to upload, many seconds to parse.

    Each deflate segment ends with a full flush, so it stands alone and can be repeated
    instead of compressing a gigabyte.
    """
    header = b"order_id,customer,amount,paid,ordered_on\n"
    row = b"12345,some customer name,1234.50,true,2026-11-01\n"
    block = row * ((1 << 20) // len(row))
    repeats = 1000
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = compressor.compress(header) + compressor.flush(zlib.Z_FULL_FLUSH)
    segment = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.flush(zlib.Z_FINISH)
    crc = zlib.crc32(header)
    for _ in range(repeats):
        crc = zlib.crc32(block, crc)
    size = len(header) + repeats * len(block)
    path = tmp_path_factory.mktemp("files") / "large.csv.gz"
    with open(path, "wb") as out:
        out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")  # gzip header, no name
        out.write(head)
        for _ in range(repeats):
            out.write(segment)
        out.write(tail)
        out.write(struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF))
    with gzip.open(path) as check:  # a valid gzip, whose start is the CSV
        assert check.read(len(header) + len(row)) == header + row
    return path


def open_page(page: Page, url: str) -> None:
    page.goto(f"{url}/")
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()


def job_id_of_card(page: Page, name: str) -> str:
    card = page.locator(".upload-card", has_text=name).first
    link = card.get_by_role("link", name="Open the job")
    href = link.get_attribute("href") or ""
    match = re.fullmatch(r"#/jobs/([0-9a-f-]+)", href)
    assert match, href
    return match.group(1)


def expect_bars_full(page: Page, name: str) -> None:
    card = page.locator(".upload-card", has_text=name).first
    expect(card).to_have_attribute("data-state", "succeeded", timeout=30_000)
    for label in (f"Upload of {name}", f"Parse of {name}"):
        bar = card.get_by_role("progressbar", name=label)
        expect(bar).to_have_js_property("value", 100)
        expect(bar).to_have_attribute("aria-valuetext", re.compile(r"^100%"))


def post_job(client: httpx.Client, name: str, body: bytes) -> str:
    response = client.post("/jobs", files={"file": (name, body, "text/csv")})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def wait_done(client: httpx.Client, job_id: str) -> dict[str, object]:
    job: dict[str, object] = client.get(f"/jobs/{job_id}", params={"wait": 20}).json()
    while not job["done"]:
        job = client.get(f"/jobs/{job_id}", params={"wait": 20}).json()
    return job


# ---- Tests ----------------------------------------------------------------------------------


def test_picked_file_uploads_parses_and_shows_its_records_and_errors(
    browser: Browser, server: ServiceProcess, orders_csv: Path
) -> None:
    with watched_page(browser, server.url, WIDE) as (page, _watch):
        open_page(page, server.url)
        choose_files(page, orders_csv)
        expect_bars_full(page, "orders.csv")
        job_id = job_id_of_card(page, "orders.csv")
        row = page.locator(f'#jobs-table tr[data-job-id="{job_id}"]')
        expect(row).to_have_attribute("data-status", "succeeded")  # appeared without a reload
        expect(row.locator(".status")).to_have_text("succeeded")

        row.get_by_role("link", name="orders.csv").click()
        view = page.locator("#job-view")
        expect(view.get_by_role("heading", name="orders.csv")).to_be_focused()
        facts = view.locator(".facts")
        expect(facts).to_contain_text(hashlib.sha256(ORDERS).hexdigest())
        expect(facts).to_contain_text("166 B")
        expect(facts.locator("dt:has-text('Format') + dd")).to_have_text("csv")
        expect(facts.locator("dt:has-text('Dialect') + dd")).to_contain_text(", (comma)")
        expect(facts.locator("dt:has-text('Records') + dd")).to_have_text(
            "4 records · 1 failed row"
        )

        columns = view.locator(".columns-table tbody tr")
        expect(columns).to_have_count(5)
        expect(columns.nth(2)).to_have_text(re.compile(r"amount\s*number\s*1"))

        preview = view.locator(".preview-table tbody tr")
        expect(preview).to_have_count(4)
        amount = preview.nth(0).locator("td").nth(2)  # td 0 is order_id: the # is a th
        expect(amount).to_have_text("9.50")  # the number as written, not 9.5
        expect(amount).to_have_css("text-align", "right")
        expect(preview.nth(0).locator("td").nth(0)).to_have_css("text-align", "right")
        expect(preview.nth(0).locator("td").nth(1)).to_have_css("text-align", "left")
        missing = preview.nth(2).locator("td").nth(2)
        expect(missing).to_have_text("null")
        expect(missing.locator("span")).to_have_css("font-style", "italic")
        expect(preview.nth(3).locator("td").nth(1)).to_have_text("Hopper, Grace")
        expect(preview.nth(1).locator("td").nth(3)).to_have_text("false")

        errors = view.locator(".errors-table tbody tr")
        expect(errors).to_have_count(1)
        expect(errors.first.locator("td")).to_have_text(
            ["6", "field_count", "expected 5 fields, got 2", "5,ken"]
        )

        with page.expect_download() as download:
            view.get_by_role("link", name="Download the result").click()
        saved = Path(download.value.path()).read_bytes()
        assert saved == httpx.get(f"{server.url}/jobs/{job_id}/result").content
        assert download.value.suggested_filename == "orders.ndjson"  # Content-Disposition

        screenshot(page, "job-1280.png")
        page.set_viewport_size(NARROW)
        expect(view.locator(".preview-table")).to_be_visible()
        screenshot(page, "job-375.png")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= NARROW["width"], "the page scrolls sideways at 375 px"


def test_dropped_files_upload_with_the_options_of_the_form(
    browser: Browser, server: ServiceProcess
) -> None:
    with watched_page(browser, server.url, NARROW) as (page, _watch):
        open_page(page, server.url)
        page.get_by_label("Delimiter", exact=True).select_option(label="Other…")
        page.get_by_label("Other delimiter").fill("#")
        page.get_by_label("First row is a header").uncheck()
        page.get_by_label("Max errors").fill("5")
        drop_files(
            page.locator("#drop-zone"),
            [
                ("first.txt", "1#ada\n2#grace\n", "text/plain"),
                ("second.txt", "3#linus\n", "text/plain"),
            ],
        )
        for name in ("first.txt", "second.txt"):
            expect_bars_full(page, name)
        screenshot(page, "uploads-375.png")
        job_id = job_id_of_card(page, "first.txt")
        job = httpx.get(f"{server.url}/jobs/{job_id}").json()
        assert job["options"]["delimiter"] == "#"
        assert job["options"]["header"] is False
        assert job["options"]["max_errors"] == 5
        assert [column["name"] for column in job["result"]["columns"]] == ["col1", "col2"]


def test_upload_progress_shows_bytes_rate_and_time_left(
    browser: Browser, server: ServiceProcess, tmp_path: Path
) -> None:
    big = tmp_path / "slow.csv"
    big.write_bytes(b"n\n" + b"".join(b"%d\n" % n for n in range(600_000)))  # 4.5 MB
    with watched_page(browser, server.url, WIDE) as (page, _watch):
        open_page(page, server.url)
        network = page.context.new_cdp_session(page)
        network.send("Network.enable")
        network.send(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 2e6},
        )
        choose_files(page, big)
        card = page.locator(".upload-card", has_text="slow.csv").first
        bar = card.get_by_role("progressbar", name="Upload of slow.csv")
        expect(card.locator(".meter-text").first).to_have_text(
            re.compile(r"^[\d.]+ (kB|MB) of 4\.\d+ MB · [\d.]+ MB/s · (< )?\d+ s left$")
        )
        share = bar.evaluate("bar => bar.value")
        assert 0 < share < 100
        expect(bar).to_have_attribute("aria-valuetext", re.compile(r"^[\d.]+%, .* MB/s"))
        expect_bars_full(page, "slow.csv")


def test_file_picker_opens_from_the_keyboard_and_controls_are_labelled(
    browser: Browser, server: ServiceProcess
) -> None:
    with watched_page(browser, server.url, WIDE) as (page, _watch):
        open_page(page, server.url)
        # Listening early lets Playwright take over the chooser before the key is pressed.
        page.on("filechooser", lambda _chooser: None)
        page.get_by_label("First row is a header").focus()
        page.keyboard.press("Tab")
        expect(page.locator("#file-input")).to_be_focused()
        with page.expect_file_chooser() as chooser:
            page.keyboard.press("Space")
        assert chooser.value.is_multiple()
        unnamed = page.evaluate(
            """() => [...document.querySelectorAll("input, select, button, progress")]
                .filter((control) => control.checkVisibility() || control.id === "file-input")
                .filter((control) => !(control.labels && control.labels.length)
                    && !control.getAttribute("aria-label") && !control.textContent.trim())
                .map((control) => control.outerHTML)"""
        )
        assert unnamed == []


def test_a_running_job_is_cancelled_from_the_table(
    browser: Browser, server: ServiceProcess, large_gzip: Path
) -> None:
    with watched_page(browser, server.url, WIDE) as (page, _watch):
        open_page(page, server.url)
        choose_files(page, large_gzip)
        card = page.locator(".upload-card", has_text=large_gzip.name).first
        expect(card).to_have_attribute("data-state", "parsing", timeout=30_000)
        job_id = job_id_of_card(page, large_gzip.name)
        row = page.locator(f'#jobs-table tr[data-job-id="{job_id}"]')
        expect(row).to_have_attribute("data-status", "running")
        # Live parse progress from the event stream: phase, percent, rows, rate, time left.
        expect(card.locator(".meter-text").nth(1)).to_have_text(
            re.compile(r"^(scan|write) · [\d.]+% · [\d,]+ rows · [\d.–]+ MB/s · .+ left")
        )

        row.get_by_role("button", name=f"Cancel the job for {large_gzip.name}").click()
        page.get_by_role("button", name="Cancel job").click()
        expect(row).to_have_attribute("data-status", "cancelled", timeout=10_000)
        expect(row.get_by_role("button", name=re.compile("^Cancel"))).to_be_hidden()
        expect(card).to_have_attribute("data-state", "cancelled")
        expect(card).to_contain_text("Cancelled at")
        job = httpx.get(f"{server.url}/jobs/{job_id}").json()
        assert job["status"] == "cancelled"
        assert job["progress"]["percent"] < 100


def test_a_job_made_elsewhere_appears_and_is_deleted_after_confirmation(
    browser: Browser, server: ServiceProcess
) -> None:
    with (
        watched_page(browser, server.url, WIDE) as (page, _watch),
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        open_page(page, server.url)
        job_id = post_job(client, "made-by-curl.csv", b"a,b\n1,2\n")
        row = page.locator(f'#jobs-table tr[data-job-id="{job_id}"]')
        expect(row).to_have_attribute("data-status", "succeeded", timeout=10_000)

        delete = row.get_by_role("button", name="Delete the job for made-by-curl.csv")
        delete.click()
        page.get_by_role("button", name="Keep it").click()
        page.wait_for_timeout(500)
        expect(row).to_be_visible()
        assert client.get(f"/jobs/{job_id}").status_code == 200

        delete.click()
        expect(page.locator("#confirm-message")).to_contain_text("made-by-curl.csv")
        page.get_by_role("button", name="Delete job").click()
        expect(row).to_have_count(0)
        assert client.get(f"/jobs/{job_id}").status_code == 404
        page.wait_for_timeout(2500)  # a refresh later, it is still gone
        expect(row).to_have_count(0)


def test_jobs_are_filtered_by_status_and_paged_through_the_cursor(
    browser: Browser, server: ServiceProcess
) -> None:
    with (
        watched_page(browser, server.url, WIDE) as (page, _watch),
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        failed_id = post_job(client, "empty.csv", b"")
        created = [post_job(client, f"small-{n}.csv", b"a\n1\n") for n in range(11)]
        for job_id in [failed_id, *created]:
            wait_done(client, job_id)
        open_page(page, server.url)

        page.get_by_label("Status", exact=True).select_option("failed")
        rows = page.locator("#jobs-table tbody tr")
        expect(page.locator("#jobs-table tbody tr:not([data-status='failed'])")).to_have_count(0)
        expect(page.locator(f'tr[data-job-id="{failed_id}"]')).to_be_visible()

        page.get_by_label("Status", exact=True).select_option("")
        page.get_by_label("Per page", exact=True).select_option("10")
        first = client.get("/jobs", params={"limit": 10}).json()
        second = client.get(first["next"]).json()
        ids = [job["id"] for job in first["items"]]
        expect(rows).to_have_count(10)
        expect(rows.first).to_have_attribute("data-job-id", ids[0])
        page.get_by_role("button", name="Older").click()
        expect(page.locator("#jobs-page")).to_have_text("Page 2")
        expect(rows.first).to_have_attribute("data-job-id", second["items"][0]["id"])
        expect(rows).to_have_count(len(second["items"]))
        page.get_by_role("button", name="Newer").click()
        expect(page.locator("#jobs-page")).to_have_text("Page 1")
        expect(rows.first).to_have_attribute("data-job-id", ids[0])


def test_with_api_keys_the_page_asks_for_one_and_keeps_it_out_of_urls(
    browser: Browser, keyed_server: ServiceProcess, orders_csv: Path
) -> None:
    url = keyed_server.url
    for path in ("/", "/static/js/app.js", "/static/style.css"):
        assert httpx.get(f"{url}{path}").status_code == 200, path
    for path in ("/jobs", "/docs"):
        assert httpx.get(f"{url}{path}").status_code == 401, path

    # Chromium logs every 401 it receives; they are what makes the page ask for a key.
    with watched_page(browser, url, WIDE, allowed_console=("status of 401",)) as (page, watch):
        page.goto(f"{url}/")
        dialog = page.get_by_role("dialog", name="API key")
        expect(dialog).to_be_visible()
        dialog.get_by_label("API key").fill("wrong-key")
        dialog.get_by_role("button", name="Use this key").click()
        expect(dialog).to_contain_text("refused")
        dialog.get_by_label("API key").fill(API_KEY)
        dialog.get_by_role("button", name="Use this key").click()
        expect(dialog).to_be_hidden()

        choose_files(page, orders_csv)
        expect_bars_full(page, "orders.csv")
        job_id = job_id_of_card(page, "orders.csv")
        page.locator(".upload-card").first.get_by_role("link", name="Open the job").click()
        preview = page.locator(".preview-table tbody tr")
        expect(preview).to_have_count(4)
        with page.expect_download() as download:
            page.get_by_role("link", name="Download the result").click()
        headers = {"Authorization": f"Bearer {API_KEY}"}
        expected = httpx.get(f"{url}/jobs/{job_id}/result", headers=headers).content
        assert Path(download.value.path()).read_bytes() == expected
        assert download.value.suggested_filename == "orders.ndjson"  # Content-Disposition

        page.reload()  # the key is kept for the tab
        expect(page.locator(f'#jobs-table tr[data-job-id="{job_id}"]')).to_be_visible()
        expect(dialog).to_be_hidden()
        assert page.evaluate("sessionStorage.getItem('ingest.apiKey')") == API_KEY
        assert not [seen for seen in watch.request_urls if API_KEY in seen]

        page.get_by_role("button", name="Forget the API key").click()
        expect(dialog).to_be_visible()  # the next refresh of the table needs one again


def test_docs_render_swagger_ui_from_the_service(browser: Browser, server: ServiceProcess) -> None:
    with watched_page(browser, server.url, WIDE) as (page, watch):
        page.goto(f"{server.url}/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("ingest")
        expect(page.locator(".opblock").first).to_be_visible()
        screenshot(page, "docs-1280.png")
        assert any("/static/swagger-ui/swagger-ui-bundle.js" in seen for seen in watch.request_urls)


def test_a_linked_job_previews_only_its_first_hundred_records(
    browser: Browser, server: ServiceProcess
) -> None:
    body = b"n,square\n" + b"".join(b"%d,%d\n" % (n, n * n) for n in range(1, 5001))
    with (
        watched_page(browser, server.url, WIDE) as (page, _watch),
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        job_id = post_job(client, "squares.csv", body)
        wait_done(client, job_id)
        page.goto(f"{server.url}/#/jobs/{job_id}")
        view = page.locator("#job-view")
        expect(view.get_by_role("heading", name="squares.csv")).to_be_visible()
        expect(view.locator(".preview-table tbody tr")).to_have_count(100)
        expect(view.locator(".preview-table tbody tr").last.locator("td")).to_have_text(
            ["100", "10000"]
        )
        expect(view).to_contain_text("The first 100 records of 5,000.")
        expect(view).to_contain_text("No row errors.")
        page.get_by_role("link", name="Close").click()
        expect(view).to_be_hidden()
        expect(page.get_by_role("heading", name="Jobs")).to_be_focused()


def test_the_event_stream_parser_gives_the_same_events_however_the_text_is_split(
    browser: Browser, server: ServiceProcess
) -> None:
    text = (
        ": keep-alive\r\n"
        'event: progress\r\nid: 1\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
        "event: done\rdata: last\r\r"
        "data: after\n\n"
    )
    with watched_page(browser, server.url, WIDE) as (page, _watch):
        page.goto(f"{server.url}/")
        outcomes = page.evaluate(
            """async (text) => {
                const { EventStreamParser } = await import("/static/js/sse.js");
                const outcomes = new Set();
                for (let cut = 0; cut <= text.length; cut += 1) {
                    const parser = new EventStreamParser();
                    const events = parser.push(text.slice(0, cut));
                    events.push(...parser.push(text.slice(cut)));
                    outcomes.add(JSON.stringify(events));
                }
                const parser = new EventStreamParser();
                const oneByOne = [];
                for (const char of text) oneByOne.push(...parser.push(char));
                outcomes.add(JSON.stringify(oneByOne));
                return [...outcomes];
            }""",
            text,
        )
    assert [json.loads(outcome) for outcome in outcomes] == [
        [
            {"event": "progress", "data": '{"a":\n1}', "id": "1"},
            {"event": "done", "data": "last", "id": "1"},
            {"event": "message", "data": "after", "id": "1"},
        ]
    ]


def test_a_large_file_goes_through_tus_and_resumes_by_itself_after_a_dropped_connection(
    browser: Browser, server: ServiceProcess, tmp_path: Path
) -> None:
    big = tmp_path / "resumed.csv"
    rows = write_csv(big, 24 * MiB)  # two chunks of the page's tus client
    seen: list[str] = []

    def drop_the_second_patch(route: Route) -> None:
        request = route.request
        if "/uploads" in request.url:
            seen.append(request.method)
            if request.method == "PATCH" and seen.count("PATCH") == 2:
                route.abort("connectionreset")
                return
        route.fallback()

    allowed = ("ERR_CONNECTION_RESET",)  # Chromium logs the request the test cut
    with watched_page(browser, server.url, WIDE, allowed_console=allowed) as (page, _watch):
        open_page(page, server.url)
        page.route("**/uploads**", drop_the_second_patch)
        choose_files(page, big)
        expect_bars_full(page, big.name)
        job_id = job_id_of_card(page, big.name)
    assert seen[0] == "POST"
    assert seen.count("PATCH") == 3  # the cut one was sent again, from the offset HEAD gave
    assert "HEAD" in seen[seen.index("PATCH") + 2 :]
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job = client.get(f"/jobs/{job_id}").json()
        assert job["file"]["sha256"] == hashlib.sha256(big.read_bytes()).hexdigest()
        assert job["file"]["name"] == big.name
        assert_succeeded_with_csv(client, job_id, rows)
