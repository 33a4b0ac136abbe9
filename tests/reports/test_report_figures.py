"""Every number of a rendered executive report equals an independent SQL count, on SQLite and PostgreSQL.

The page is rendered by the project and read back with an HTML parser; the
expected values come from hand-written SQL (tests/report_dataset.py) over the
same week and the week before it. Also: words, order, dates and the empty week.
"""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import DateTime, bindparam, text

from eclipse_exports.reports import ReportData, collect_report, render_report
from eclipse_exports.reports.figures import DayCounts, PeriodFigures
from eclipse_exports.reports.page import SEVERITY_ORDER, WORDS, slug
from tests.html_page import parse_page
from tests.report_briefing_sql import ageing_expectations
from tests.report_dataset import ACTIVE, WEEK_1, WEEK_2, WEEK_3, sql_figures

HEADLINE = ("alerts_new", "critical_alerts_new", "alerts_resolved", "infringements_opened", "open_infringements",
            "actions_completed")
BREAKDOWNS = {"alerts_by_severity": "severity", "infringements_by_type": "infringement_type"}
CURRENT_ONLY = {"alerts_by_status": "alert_status", "open_infringements_by_status": "infringement_status"}


def render(engine, workspace_id: str, start: datetime, end: datetime) -> str:
    with engine.connect() as conn:
        return render_report(collect_report(conn, workspace_id, start, end, end + timedelta(hours=6)))


def _slugged(counts: dict, vocabulary: str) -> dict[str, int]:
    result: dict[str, int] = {}
    for key, n in counts.items():
        result[slug(vocabulary, key)] = result.get(slug(vocabulary, key), 0) + n
    return result


def _close(a: float | None, b: float | None, tolerance: float) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= tolerance)


def _number(raw: str) -> float | None:
    return float(raw) if raw != "" else None


@pytest.mark.parametrize("workspace_id", ACTIVE)
@pytest.mark.parametrize("week", [WEEK_1, WEEK_2, WEEK_3], ids=lambda w: w.date().isoformat())
def test_every_number_matches_sql(report_source, workspace_id, week):
    end = week + timedelta(days=7)
    page = parse_page(render(report_source, workspace_id, week, end))
    with report_source.connect() as conn:
        now, before = sql_figures(conn, workspace_id, week, end), sql_figures(conn, workspace_id, week - (end - week),
                                                                                week)
    for name in HEADLINE:
        assert int(page.value(name)) == now[name], name
        assert page.shown(name) == f"{now[name]:,}", name
        assert int(page.value(f"{name}.previous")) == before[name], name
        if now[name] != before[name]:
            assert int(page.value(f"{name}.change")) == now[name] - before[name], name
    for name in ("takedown_success_rate", "median_takedown_seconds"):
        tolerance = 1e-9 if name == "takedown_success_rate" else 1.0
        assert _close(_number(page.value(name)), now[name], tolerance), name
        assert _close(_number(page.value(f"{name}.previous")), before[name], tolerance), name
    assert int(page.value("actions_completed.table")) == now["actions_completed"]
    assert int(page.value("actions_failed.table")) == now["actions_failed"]
    with report_source.connect() as conn:
        assert int(page.value("critical_alert_count")) == ageing_expectations(conn, workspace_id, end)["critical_count"]
    for name, vocabulary in BREAKDOWNS.items():
        expected, previous = _slugged(now[name], vocabulary), _slugged(before[name], vocabulary)
        for key in set(expected) | set(previous):
            assert int(page.value(f"{name}.{key}")) == expected.get(key, 0), (name, key)
            assert int(page.value(f"{name}.{key}.previous")) == previous.get(key, 0), (name, key)
    for name, vocabulary in CURRENT_ONLY.items():
        expected = _slugged(now[name], vocabulary)
        shown = {n.split(".", 1)[1]: int(v) for n, (v, _) in page.figures.items() if n.startswith(name + ".")}
        assert shown == expected, name


@pytest.mark.parametrize("days", [7, 10], ids=["a week: the trends' last two points", "10 days: counted apart"])
def test_the_period_and_the_one_before_match_sql_whatever_the_length(report_source, days):
    """A 7-day period takes its headline figures (and the previous period's) from the trends' last two weeks;
    any other length counts them itself. Both paths give the SQL's numbers."""
    start = WEEK_2 + timedelta(hours=5)
    end = start + timedelta(days=days)
    with report_source.connect() as conn:
        data = collect_report(conn, "ws_north", start, end, end)
        expected = [sql_figures(conn, "ws_north", start, end), sql_figures(conn, "ws_north", start - (end - start),
                                                                            start)]
    for figures, sql in zip([data, data.previous], expected, strict=True):
        assert _slugged(figures.alerts_by_severity, "severity") == _slugged(sql["alerts_by_severity"], "severity")
        assert (figures.alerts_new, figures.critical_alerts_new, figures.alerts_resolved) == (
            sql["alerts_new"], sql["critical_alerts_new"], sql["alerts_resolved"])
        assert (figures.actions_completed, figures.actions_failed) == (sql["actions_completed"],
                                                                      sql["actions_failed"])
        assert figures.open_infringement_count == sql["open_infringements"]
        assert _close(figures.median_takedown_seconds, sql["median_takedown_seconds"], 1.0)
    assert (data.trends[-1].start, data.trends[-1].end) == (end - timedelta(days=7), end)


def test_chart_bars_match_sql_per_day(report_source):
    end = WEEK_2 + timedelta(days=7)
    page = parse_page(render(report_source, "ws_north", WEEK_2, end))
    bars: dict[tuple[str, str], int] = {}
    for rect in page.tags("rect"):
        if "data-bar" in rect.attrs:
            bars[(rect.attrs["data-bar"], rect.attrs["data-severity"])] = int(rect.attrs["data-count"])
    expected: dict[tuple[str, str], int] = {}
    with report_source.connect() as conn:
        for day in range(7):
            start = WEEK_2 + timedelta(days=day)
            statement = text("SELECT severity, COUNT(*) FROM alerts WHERE workspace_id = 'ws_north' "
                             "AND detected_at >= :s AND detected_at < :e GROUP BY severity").bindparams(
                bindparam("s", type_=DateTime(timezone=True)), bindparam("e", type_=DateTime(timezone=True)))
            for severity, n in conn.execute(statement, {"s": start, "e": start + timedelta(days=1)}):
                expected[(start.date().isoformat(), slug("severity", severity))] = n
    assert bars == expected and sum(bars.values()) > 0
    # Six nearly equal bars said little: infringements by type are a table only.
    assert not [r for r in page.tags("rect") if "data-type" in r.attrs]


def test_empty_week_says_no_activity(report_source):
    page = parse_page(render(report_source, "ws_quiet", WEEK_2, WEEK_2 + timedelta(days=7)))
    assert "No activity this week." in page.visible_text
    assert not [r for r in page.tags("rect") if "data-bar" in r.attrs] and int(page.value("alerts_new")) == 0
    assert int(page.value("open_infringements")) > 0  # found before the week, still open: listed, not hidden
    assert "Infringements detected earlier are still open" in page.visible_text


def test_words_order_dates_and_separators():
    start = datetime(2026, 11, 23, tzinfo=UTC)
    data = ReportData("ws_big", "Big Co", start, start + timedelta(days=7), start + timedelta(days=7, hours=6),
                      alerts_by_severity={"low": 1_234_567, "critical": 2_500, None: 3, "medium": 10, "high": 9_999},
                      alerts_by_status={"resolved": 1_000_000, "new": 247_079},
                      infringements_by_type={"domain_squatting": 12_345, "social_media": 7},
                      open_infringements_by_status={"takedown_requested": 4_321, "in_review": 1},
                      actions_completed=3, actions_failed=1, median_takedown_seconds=5400,
                      alerts_per_bar=[DayCounts(start, start + timedelta(days=1), {"low": 1_234_567})],
                      previous=PeriodFigures(alerts_by_severity={"low": 1_000_000}))
    page = parse_page(render_report(data))
    text = page.visible_text
    assert page.shown("alerts_new") == "1,247,079" and page.shown("alerts_by_severity.low") == "1,234,567"
    assert "▲ 247,079 (+24.7%)" in text
    names = [e.attrs.get("data-figure", "") for e in page.tags("data")]
    rows = [n for n in names if n.startswith("alerts_by_severity.") and n.count(".") == 1]
    assert rows == [f"alerts_by_severity.{s}" for s in (*SEVERITY_ORDER, "not_set")]
    assert "Domain squatting" in text and "Takedown requested" in text and "Social media" in text
    for raw in ("domain_squatting", "takedown_requested", "social_media", "in_review"):
        assert raw not in text
    assert "Week of Mon 23 Nov 2026 – Sun 29 Nov 2026 (UTC)" in text and "30 Nov 2026, 06:00 UTC" in text
    assert page.shown("median_takedown_seconds") == "1.5 hours" and page.shown("takedown_success_rate") == "75.0%"
    assert WORDS["severity"]["critical"] in text and "Not set" in text


def test_an_on_demand_period_speaks_of_the_period(report_sqlite):
    start, end = datetime(2026, 10, 1, 12, tzinfo=UTC), datetime(2026, 10, 31, 12, tzinfo=UTC)
    text = parse_page(render(report_sqlite, "ws_north", start, end)).visible_text
    assert "1 Oct 2026, 12:00 UTC – 31 Oct 2026, 12:00 UTC" in text
    assert "the previous 30 days" in text and "in this period" in text and "this week" not in text
