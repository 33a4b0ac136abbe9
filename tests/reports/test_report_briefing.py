"""The briefing's figures on the page equal independent counts, on SQLite and PostgreSQL.

Trends (every point of the 12 weeks), brands at risk, the backlog's ageing,
open critical alerts, the takedown breakdown and every number of the "In
brief" sentences, read back from the rendered page (``data-figure`` and the
trend marks' ``data-*``) and compared with tests/report_briefing_sql.py.
Also the demo data's ``ws_acme`` as a new user reads it: the brief names the
backlog's growth and the failing takedowns with their numbers.
"""

from datetime import UTC, datetime, timedelta

import pytest

from eclipse_exports.reports import collect_report, render_report
from eclipse_exports.reports.brief import BriefThresholds
from eclipse_exports.reports.page import slug
from eclipse_exports.source.demo_data import load_demo_data
from tests.html_page import parse_page
from tests.report_briefing_sql import (
    ageing_expectations,
    brand_expectations,
    takedown_expectations,
    trend_expectations,
)
from tests.report_dataset import ACTIVE, WEEK_2, WEEK_3, sql_figures

DEMO_AS_OF = datetime(2026, 12, 7, tzinfo=UTC)
DEMO_WEEK = datetime(2026, 11, 23, tzinfo=UTC)


def _page(engine, workspace_id: str, start: datetime, end: datetime, thresholds: BriefThresholds | None = None):
    with engine.connect() as conn:
        data = collect_report(conn, workspace_id, start, end, end + timedelta(hours=6))
    return parse_page(render_report(data, thresholds or BriefThresholds())), data


def _close(a, b, tolerance: float) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(float(a) - float(b)) <= tolerance)


def _trend_marks(page, name: str) -> dict[str, str]:
    return {e.attrs["data-week"]: e.attrs["data-value"] for e in page.elements if e.attrs.get("data-trend") == name}


def check_briefing(engine, workspace_id: str, start: datetime, end: datetime) -> None:
    page, _ = _page(engine, workspace_id, start, end)
    with engine.connect() as conn:
        trends = trend_expectations(conn, workspace_id, end)
        brands = brand_expectations(conn, workspace_id, start, end)
        ageing = ageing_expectations(conn, workspace_id, end)
        takedowns = takedown_expectations(conn, workspace_id, start, end)
        now = sql_figures(conn, workspace_id, start, end)
        before = sql_figures(conn, workspace_id, start - (end - start), start)

    alerts, backlog = _trend_marks(page, "alerts_new"), _trend_marks(page, "open_backlog")
    rates, medians = _trend_marks(page, "takedown_success_rate"), _trend_marks(page, "median_takedown_seconds")
    assert [w["week"] for w in trends] == sorted(alerts) and len(alerts) == 12
    for week in trends:
        key = week["week"]
        assert int(alerts[key]) == week["alerts_new"], key
        assert int(backlog[key]) == week["open_backlog"], key
        assert _close(rates.get(key), week["rate"], 1e-9), key
        assert _close(medians.get(key), week["median"], 1.0), key
    assert trends[-1]["open_backlog"] == now["open_infringements"]  # the last point is the headline figure
    stacked = {(r.attrs["data-severity"], int(r.attrs["data-count"])) for r in page.tags("rect")
               if "data-severity" in r.attrs and "data-bar" not in r.attrs and r.attrs.get("data-count")}
    assert sum(n for _, n in stacked) <= sum(w["alerts_new"] for w in trends)

    listed = [e.attrs["data-brand"] for e in page.tags("tr") if "data-brand" in e.attrs]
    assert len(listed) == len(brands)
    expected_by_name = {name or "": values for name, *values in brands}
    for rank, name in enumerate(listed, 1):
        shown = [int(page.value(f"brands.{rank}.{f}")) for f in ("alerts", "alerts.previous", "open", "open.previous")]
        assert shown == expected_by_name[name], name
    assert [int(page.value(f"brands.{r}.alerts")) for r in range(1, len(listed) + 1)] == [b[1] for b in brands]

    for bucket, n in ageing["buckets"].items():
        assert int(page.value(f"ageing.{bucket}")) == n, bucket
    assert sum(ageing["buckets"].values()) == now["open_infringements"]
    ages = [int(e.attrs["data-age-seconds"]) for e in page.tags("tr") if "data-age-seconds" in e.attrs]
    assert ages == [a for _, a in ageing["oldest"]] + [a for _, a in ageing["critical"]]
    assert int(page.value("critical_alert_count")) == ageing["critical_count"]

    for action_type, (completed, failed) in takedowns["by_type"].items():
        name = slug("action_type", action_type)
        assert int(page.value(f"takedowns.{name}.completed")) == completed, action_type
        assert int(page.value(f"takedowns.{name}.failed")) == failed, action_type
        assert _close(page.value(f"takedowns.{name}.rate") or None, completed / (completed + failed), 1e-9)
    assert sum(c for c, _ in takedowns["by_type"].values()) == now["actions_completed"]
    shown_failures = [int(v) for n, (v, _) in page.figures.items() if n.startswith("takedowns.failure.")]
    assert shown_failures == [n for _, n in takedowns["failures"][:5]]
    assert int(page.value("first_action_count")) == takedowns["first_count"]
    assert _close(page.value("first_action_median_seconds") or None, takedowns["first_median"], 1.0)

    expected_brief = {
        "brief.open_infringements": now["open_infringements"],
        "brief.open_infringements.previous": before["open_infringements"],
        "brief.actions_failed": now["actions_failed"], "brief.actions_completed": now["actions_completed"],
        "brief.takedown_success_rate": now["takedown_success_rate"],
        "brief.takedown_success_rate.previous": before["takedown_success_rate"],
        "brief.critical_alerts_new": now["critical_alerts_new"],
        "brief.critical_alerts_new.previous": before["critical_alerts_new"],
        "brief.oldest_open_days": ageing["oldest"][0][1] // 86_400 if ageing["oldest"] else None,
        "brief.open_over_90_days": ageing["buckets"]["over_90"],
        "brief.top_brand_alerts": brands[0][1] if brands else None,
        "brief.top_brand_open": brands[0][3] if brands else None,
    }
    if before["open_infringements"]:
        growth = (now["open_infringements"] - before["open_infringements"]) / before["open_infringements"] * 100
        expected_brief["brief.backlog_growth_percent"] = round(growth, 1)
    if before["critical_alerts_new"]:
        rise = (now["critical_alerts_new"] - before["critical_alerts_new"]) / before["critical_alerts_new"] * 100
        expected_brief["brief.critical_rise_percent"] = round(rise)
    sentences = [e for e in page.tags("li") if "data-brief" in e.attrs]
    assert 1 <= len(sentences) <= 5
    brief_numbers = {n: v for n, (v, _) in page.figures.items() if n.startswith("brief.")}
    assert brief_numbers, "the brief prints its numbers"
    for name, value in brief_numbers.items():
        assert _close(value or None, expected_brief[name], 1e-9), name


@pytest.mark.parametrize("workspace_id", ACTIVE)
@pytest.mark.parametrize("week", [WEEK_2, WEEK_3], ids=lambda w: w.date().isoformat())
def test_briefing_figures_match_sql(report_source, workspace_id, week):
    check_briefing(report_source, workspace_id, week, week + timedelta(days=7))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def demo_source(request, tmp_path_factory):
    from sqlalchemy import create_engine

    from tests.conftest import _fresh_database

    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.db'}")
    else:
        engine = create_engine(_fresh_database(request.getfixturevalue("postgres_url"), "briefing_demo"))
    load_demo_data(engine, "small", as_of=DEMO_AS_OF)
    yield engine
    engine.dispose()


def test_demo_briefing_figures_match_sql(demo_source):
    check_briefing(demo_source, "ws_acme", DEMO_WEEK, DEMO_WEEK + timedelta(days=7))


def test_a_new_user_reads_what_needs_attention_first(demo_source):
    """ws_acme, week of 23 Nov: the backlog grew and more takedowns failed than completed; the brief says so first."""
    page, data = _page(demo_source, "ws_acme", DEMO_WEEK, DEMO_WEEK + timedelta(days=7))
    assert data.open_infringement_count > data.previous.open_infringement_count
    assert data.actions_failed > data.actions_completed
    topics = [e.attrs["data-brief"] for e in page.tags("li") if "data-brief" in e.attrs]
    assert 3 <= len(topics) <= 5 and topics[0] == "takedowns" and "backlog" in topics and "brand" in topics
    text = "".join(page.visible_text.split())  # the parser joins text around <data> with spaces
    failing = f"More takedowns failed ({data.actions_failed:,}) than completed ({data.actions_completed:,})"
    assert "".join(failing.split()) in text
    assert "".join(f"The open backlog rose {page.shown('brief.backlog_growth_percent')} to "
                   f"{data.open_infringement_count:,} infringements".split()) in text
    assert text.index("Inbrief") < text.index("Trendsover12weeks") < text.index("Brandsatrisk") \
        < text.index("Detailtables")


def test_a_quiet_week_says_so_in_one_sentence(report_sqlite):
    page, _ = _page(report_sqlite, "ws_quiet", WEEK_2, WEEK_2 + timedelta(days=7),
                    BriefThresholds(oldest_open_days=10_000))
    sentences = [e for e in page.tags("li") if "data-brief" in e.attrs]
    assert [s.attrs["data-brief"] for s in sentences] == ["quiet"]
    assert "A quiet week: no figure crossed its threshold" in page.visible_text


def test_thresholds_decide_the_sentences(report_sqlite):
    end = WEEK_3 + timedelta(days=7)
    strict, _ = _page(report_sqlite, "ws_north", WEEK_3, end, BriefThresholds(
        backlog_growth_percent=1e9, success_rate_percent=0, success_drop_points=1e9, critical_rise_percent=1e9,
        oldest_open_days=10_000))
    assert [e.attrs["data-brief"] for e in strict.tags("li") if "data-brief" in e.attrs] == ["quiet"]
    loose, _ = _page(report_sqlite, "ws_north", WEEK_3, end, BriefThresholds(oldest_open_days=1))
    assert "oldest" in [e.attrs["data-brief"] for e in loose.tags("li") if "data-brief" in e.attrs]
