"""The report as a new user opens it: the PDF's page 1 is the brief, at most 3 A4 pages; the HTML's top is the brief.

The demo data's ``ws_acme`` (week of 23 Nov 2026) is rendered by the project;
its PDF is read with poppler (``pdftotext``, ``pdfinfo``, ``pdftoppm``: page 1
as PNG) and its HTML is opened in Debian's chromium through Playwright on a
laptop-sized screen (1366 × 768). Screenshots are kept under ``tests/artifacts/``.
"""

import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine

from eclipse_exports.reports import collect_report, render_report
from eclipse_exports.reports.brief import BriefThresholds
from eclipse_exports.reports.pdf import close_pdf_printer, keep_pdf_printer_warm, release_pdf_printer, render_pdf
from eclipse_exports.source.demo_data import load_demo_data
from tests.reports.test_report_page import ARTIFACTS, browser  # noqa: F401 - the chromium fixture

WEEK = datetime(2026, 11, 23, tzinfo=UTC)
SCREEN = {"width": 1366, "height": 768}


@pytest.fixture(scope="module")
def acme_week(tmp_path_factory) -> tuple[str, bytes, int, Path]:
    folder = tmp_path_factory.mktemp("acme")
    engine = create_engine(f"sqlite:///{folder / 'demo.db'}")
    load_demo_data(engine, "small", as_of=datetime(2026, 12, 7, tzinfo=UTC))
    with engine.connect() as conn:
        data = collect_report(conn, "ws_acme", WEEK, WEEK + timedelta(days=7), WEEK + timedelta(days=7, hours=6))
    html = render_report(data, BriefThresholds())
    pdf, pages = render_pdf(html)
    (folder / "report.pdf").write_bytes(pdf)
    (folder / "report.html").write_text(html, encoding="utf-8")
    engine.dispose()
    return html, pdf, pages, folder


def _poppler(*args: str) -> str:
    if shutil.which(args[0]) is None:
        pytest.fail(f"{args[0]} is missing: apt-get install poppler-utils (scripts/bootstrap.sh --with-postgres)")
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout


def test_the_pdf_has_the_brief_on_page_1_and_at_most_3_a4_pages(acme_week):
    _, pdf, pages, folder = acme_week
    path = folder / "report.pdf"
    info = dict(line.split(":", 1) for line in _poppler("pdfinfo", str(path)).splitlines() if ":" in line)
    assert int(info["Pages"]) == pages <= 3
    assert info["Page size"].endswith("(A4)"), info["Page size"]  # 595 x 842 pt, as poppler names it
    page_1 = " ".join(_poppler("pdftotext", "-f", "1", "-l", "1", "-layout", str(path), "-").split())
    for heading in ("Headline figures", "In brief", "Trends over 12 weeks"):
        assert heading in page_1, heading
    assert "More takedowns failed" in page_1 and "The open backlog rose" in page_1
    whole = " ".join(_poppler("pdftotext", str(path), "-").split())
    assert "How these figures are defined" in whole  # nothing cut off at the end
    _poppler("pdftoppm", "-f", "1", "-l", "1", "-r", "90", "-png", "-singlefile", str(path), str(folder / "page-1"))
    png = (folder / "page-1.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 60_000  # drawn, not blank
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(folder / "page-1.png", ARTIFACTS / "ws_acme-report-pdf-page-1.png")
    (ARTIFACTS / "ws_acme-report.pdf").write_bytes(pdf)


def test_the_html_reads_as_a_briefing_in_two_laptop_screens(acme_week, browser):  # noqa: F811
    _, _, _, folder = acme_week
    page = browser.new_page(viewport=SCREEN)
    page.goto((folder / "report.html").as_uri(), wait_until="load")
    box = "e => { const r = e.getBoundingClientRect(); return {top: r.top + scrollY, bottom: r.bottom + scrollY}; }"
    sections = (("brief", "#in-brief"), ("trends", "#trends"), ("ageing", "#ageing"), ("details", "#details"))
    boxes = {name: page.eval_on_selector(selector, box) for name, selector in sections}
    png = folder / "top.png"
    page.screenshot(path=str(png))  # the first screen, as a laptop shows it
    page.close()
    assert boxes["brief"]["bottom"] <= SCREEN["height"], boxes  # the brief is on the first screen
    assert boxes["trends"]["bottom"] <= 2 * SCREEN["height"], boxes  # the trends within two
    assert boxes["brief"]["top"] < boxes["trends"]["top"] < boxes["ageing"]["top"] < boxes["details"]["top"]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(png, ARTIFACTS / "ws_acme-report-html-top.png")


def _browsers() -> set[int]:
    """PIDs of the Chromium browsers below this test process (the shared printer's, and any fixture's): each
    browser's main process, whose renderers and helpers come and go below it."""
    found = set()
    for process in psutil.Process().children(recursive=True):
        try:
            if "chrom" in process.name().lower() and "chrom" not in process.parent().name().lower():
                found.add(process.pid)
        except psutil.Error:
            continue
    return found


def _gone(pids: set[int], timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pids & _browsers():
            return True
        time.sleep(0.2)
    return False


def test_a_warm_worker_keeps_its_browser_for_the_next_run_then_closes_it(acme_week):
    html = acme_week[0]
    close_pdf_printer()
    before = _browsers()
    keep_pdf_printer_warm(3)
    try:
        render_pdf(html)
        first = _browsers() - before
        assert first, "printing a PDF started no Chromium"
        release_pdf_printer()  # the end of a report run in a warm run-worker child
        time.sleep(1)
        assert first <= _browsers(), "the warm browser was closed at the run's end"
        body, pages = render_pdf(html)  # the next run, within the warm seconds: the same browser prints
        assert body.startswith(b"%PDF") and pages >= 1
        assert _browsers() - before == first, "the next run started a browser of its own"
        release_pdf_printer()
        assert _gone(first), "the browser outlived the warm seconds"
    finally:
        keep_pdf_printer_warm(0)
        close_pdf_printer()


def test_a_fresh_run_process_closes_its_browser_at_the_runs_end(acme_week):
    close_pdf_printer()
    keep_pdf_printer_warm(0)
    before = _browsers()
    render_pdf(acme_week[0])
    started = _browsers() - before
    assert started
    release_pdf_printer()
    assert _gone(started, timeout=5), "a run process's browser outlived its run"
