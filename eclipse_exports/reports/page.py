"""The executive report as one self-contained HTML page: words, numbers and dates an executive reads.

:func:`render_report` turns :class:`~eclipse_exports.reports.figures.ReportData`
into HTML with Jinja2 (autoescaping every value; ``templates/executive_report.html``).
Everything the template prints is prepared here: vocabulary values as words
(``domain_squatting`` → "Domain squatting"), severities in severity order,
counts with thousands separators, dates with "UTC", changes against the
previous period in absolute terms and per cent, chart geometry. Each figure
is also printed as ``<data data-figure="name" value="…">`` so its exact value
can be read back by machines (the tests do).
"""

from dataclasses import dataclass
from datetime import UTC, timedelta

from eclipse_exports.config import Settings
from eclipse_exports.reports.ageing import AGE_BUCKETS
from eclipse_exports.reports.brief import BriefThresholds, build_brief
from eclipse_exports.reports.charts import stacked_columns, trend_columns, trend_line
from eclipse_exports.reports.figures import LIST_LIMIT, ReportData
from eclipse_exports.reports.rendering import html_template
from eclipse_exports.reports.wording import (
    SEVERITY_ORDER,
    WORDS,
    duration,
    is_week,
    moment_utc,
    number,
    percent,
    period_label,
    period_noun,
    previous_noun,
    slug,
    word,
)

TEMPLATE = "executive_report.html"
# SVG colours as attributes, so the charts keep their colours wherever the SVG is shown on its own.
SEVERITY_FILLS = {"critical": "#8e1519", "high": "#d4380d", "medium": "#e3a008", "low": "#4a6fd1",
                  "not_set": "#a0a7b0", "other": "#6e7781"}
TITLE_CHARS = 160

@dataclass(frozen=True)
class Change:
    """A figure against the previous period: values, difference, per cent, and how to read it.

    ``direction`` is ``up``, ``down`` or ``same``; ``tone`` is ``good``, ``bad``
    or ``neutral`` for this figure (more alerts is bad, more takedowns good).
    ``text`` reads e.g. ``▲ 12 (+11.1%)``; a rate changes in percentage points.
    """

    current: float | None
    previous: float | None
    difference: float | None
    text: str
    direction: str
    tone: str


def change(current: float | None, previous: float | None, higher_is_better: bool | None,
           kind: str = "count") -> Change:
    """Compare ``current`` with ``previous``; ``kind`` is ``count``, ``rate`` (0–1) or ``duration`` (seconds)."""
    if current is None or previous is None:
        return Change(current, previous, None, "no comparison", "same", "neutral")
    difference = current - previous
    direction = "up" if difference > 0 else "down" if difference < 0 else "same"
    if direction == "same":
        return Change(current, previous, 0, "no change", direction, "neutral")
    arrow = "▲" if difference > 0 else "▼"
    if kind == "rate":
        text = f"{arrow} {abs(difference) * 100:.1f} pts"
    else:
        size = number(abs(int(difference))) if kind == "count" else duration(abs(difference))
        share = f" ({difference / previous * 100:+.1f}%)" if previous else " (new)"
        text = f"{arrow} {size}{share}"
    tone = "neutral" if higher_is_better is None else "good" if (difference > 0) == higher_is_better else "bad"
    return Change(current, previous, difference, text, direction, tone)


def ordered(counts: dict, vocabulary: str, order: tuple[str, ...] | None = None) -> list[tuple[object, int]]:
    """``counts`` as ``(value, n)`` rows: ``order`` (or the vocabulary's order) first, other values, then ``None``."""
    order = order or tuple(WORDS[vocabulary])
    known = [(v, counts[v]) for v in order if v in counts]
    other = sorted(((v, n) for v, n in counts.items() if v not in order and v is not None), key=lambda r: str(r[0]))
    return known + other + ([(None, counts[None])] if None in counts else [])


def _breakdown(current: dict, previous: dict | None, vocabulary: str, higher_is_better: bool | None,
               order: tuple[str, ...] | None = None) -> list[dict]:
    keys = dict.fromkeys([v for v, _ in ordered({**(previous or {}), **current}, vocabulary, order)])
    return [{"key": key, "label": word(vocabulary, key), "slug": slug(vocabulary, key),
             "count": current.get(key, 0),
             "change": change(current.get(key, 0), (previous or {}).get(key, 0) if previous is not None else None,
                              higher_is_better)}
            for key in keys]


@dataclass(frozen=True)
class Card:
    """One headline figure: its name in the page (``figure``), title, shown value, change and one-line definition."""

    figure: str
    title: str
    value: float | None
    shown: str
    change: Change
    definition: str


def headline_cards(data: ReportData) -> list[Card]:
    """The eight headline figures of the report, in page order, each with its change and definition."""
    p = data.previous
    noun = period_noun(data)

    def card(figure: str, title: str, value, shown: str, before, better, kind: str, definition: str) -> Card:
        return Card(figure, title, value, shown, change(value, before if p is not None else None, better, kind),
                    definition)

    return [
        card("alerts_new", "New alerts", data.alerts_new, number(data.alerts_new), p and p.alerts_new, False,
             "count", f"Alerts detected {noun}."),
        card("critical_alerts_new", "New critical alerts", data.critical_alerts_new,
             number(data.critical_alerts_new), p and p.critical_alerts_new, False, "count",
             f"New alerts of critical severity {noun}."),
        card("alerts_resolved", "Alerts resolved", data.alerts_resolved, number(data.alerts_resolved),
             p and p.alerts_resolved, True, "count", f"Of the alerts detected {noun}, those resolved now."),
        card("infringements_opened", "Infringements opened", data.infringements_opened,
             number(data.infringements_opened), p and p.infringements_opened, False, "count",
             f"Infringements detected {noun}."),
        card("open_infringements", "Open infringements at period end", data.open_infringement_count,
             number(data.open_infringement_count), p and p.open_infringement_count, False, "count",
             "Detected before the period ended; open, in review or takedown requested now."),
        card("actions_completed", "Takedown actions completed", data.actions_completed,
             number(data.actions_completed), p and p.actions_completed, True, "count",
             f"Actions of every type completed {noun}."),
        card("takedown_success_rate", "Takedown success rate", data.takedown_success_rate,
             percent(data.takedown_success_rate), p and p.takedown_success_rate, True, "rate",
             f"Completed ÷ (completed + failed) {noun}."),
        card("median_takedown_seconds", "Median takedown time", data.median_takedown_seconds,
             duration(data.median_takedown_seconds), p and p.median_takedown_seconds, False, "duration",
             f"Median of completed − created, over actions completed {noun}."),
    ]


def _alerts_chart(data: ReportData) -> dict:
    daily = len(data.alerts_per_bar) == 0 or data.alerts_per_bar[0].end - data.alerts_per_bar[0].start <= timedelta(
        days=1)
    labels = [bar.start.astimezone(UTC).strftime("%a %-d %b" if daily else "%-d %b") for bar in data.alerts_per_bar]
    counts = [bar.by_severity for bar in data.alerts_per_bar]
    days = [bar.start.astimezone(UTC).date().isoformat() for bar in data.alerts_per_bar]
    geometry = stacked_columns(labels, days, counts, list(SEVERITY_ORDER))
    lines = []
    for bar, label in zip(data.alerts_per_bar, labels, strict=True):
        parts = [f"{number(n)} {word('severity', key).lower()}" for key, n in ordered(bar.by_severity, "severity")]
        total = sum(bar.by_severity.values())
        lines.append(f"{label}: {number(total)} new alert{'s' if total != 1 else ''}"
                     + (f" ({', '.join(parts)})" if parts else ""))
    return {"geometry": geometry, "axis": "Day (UTC)" if daily else "Week starting (UTC)",
            "description": "; ".join(lines) + "."}


def _short_date(moment) -> str:
    return moment.astimezone(UTC).strftime("%-d %b")


def _trends(data: ReportData) -> list[dict]:
    """The four small multiples of the 12-week trends, each with its points' words for a text alternative."""
    points = data.trends
    if not points:
        return []
    weeks = [p.start.astimezone(UTC).date().isoformat() for p in points]
    current = len(points) - 1
    labels = [_short_date(p.start) for p in points]

    def described(values: list, shown) -> str:
        return "; ".join(f"week of {label}: {shown(v)}" for label, v in zip(labels, values, strict=True)) + "."

    alerts = [p.alerts_new for p in points]
    backlog = [p.open_backlog for p in points]
    rates = [p.takedown_success_rate for p in points]
    medians = [p.median_takedown_seconds for p in points]
    trends = [
        {"name": "alerts_new", "title": "New alerts, by severity", "now": number(alerts[-1]),
         "chart": trend_columns(weeks, [p.alerts_by_severity for p in points], list(SEVERITY_ORDER), current),
         "shown": [number(v) for v in alerts], "description": described(alerts, number)},
        {"name": "open_backlog", "title": "Open backlog at week's end", "now": number(backlog[-1]),
         "chart": trend_line(weeks, backlog, current), "shown": [number(v) for v in backlog],
         "description": described(backlog, number)},
        {"name": "takedown_success_rate", "title": "Takedown success rate", "now": percent(rates[-1]),
         "chart": trend_line(weeks, rates, current, ceiling=1.0), "shown": [percent(v) for v in rates],
         "description": described(rates, percent)},
        {"name": "median_takedown_seconds", "title": "Median takedown time", "now": duration(medians[-1]),
         "chart": trend_line(weeks, medians, current), "shown": [duration(v) for v in medians],
         "description": described(medians, duration)},
    ]
    for trend, shown in zip(trends, (number, number, percent, duration), strict=True):
        top = trend["chart"].top
        trend["top"] = shown(int(top)) if shown is number else shown(top)
    return trends


def _age(seconds: float) -> str:
    days = int(seconds // 86_400)
    return f"{days:,} day{'s' if days != 1 else ''}" if days else f"{int(seconds // 3600)} h"


def _takedown_rows(data: ReportData) -> list[dict]:
    rows = []
    for action_type, (completed, failed) in sorted(data.takedowns.by_type.items(), key=lambda r: str(r[0])):
        rows.append({"key": action_type, "label": word("action_type", action_type), "slug": slug("action_type",
                                                                                                  action_type),
                     "completed": completed, "failed": failed,
                     "rate": completed / (completed + failed) if completed + failed else None})
    return rows


def _context(data: ReportData, thresholds: BriefThresholds) -> dict:
    previous = data.previous
    noun = period_noun(data)
    return {
        "data": data,
        "week": is_week(data.period_start, data.period_end),
        "noun": noun,
        "previous_noun": previous_noun(data),
        "period": period_label(data.period_start, data.period_end),
        "previous_period": period_label(data.previous_start, data.period_start, say_utc=False),
        "generated": moment_utc(data.generated_at),
        "period_end": moment_utc(data.period_end),
        "cards": headline_cards(data),
        "severity_rows": _breakdown(data.alerts_by_severity, previous and previous.alerts_by_severity, "severity",
                                    False, SEVERITY_ORDER),
        "alert_status_rows": _breakdown(data.alerts_by_status, None, "alert_status", None),
        "type_rows": sorted(_breakdown(data.infringements_by_type, previous and previous.infringements_by_type,
                                       "infringement_type", False), key=lambda r: -r["count"]),
        "open_rows": _breakdown(data.open_infringements_by_status, None, "infringement_status", None),
        "alerts_chart": _alerts_chart(data),
        "brief": build_brief(data, thresholds, noun, previous_noun(data)),
        "trends": _trends(data),
        "trend_labels": [_short_date(p.start) for p in data.trends],
        "age_buckets": [(name, label, data.ageing.buckets.get(name, 0)) for name, label, _ in AGE_BUCKETS],
        "takedown_rows": _takedown_rows(data),
        "age": _age,
        "fills": SEVERITY_FILLS,
        "severity_order": SEVERITY_ORDER,
        "list_limit": LIST_LIMIT,
        "title_chars": TITLE_CHARS,
        "word": word,
        "slug": slug,
        "number": number,
        "moment": moment_utc,
        "duration": duration,
        "percent": percent,
        "change": change,
    }


def render_report(data: ReportData, thresholds: BriefThresholds | None = None) -> str:
    """The report as one HTML page (UTF-8 text): inline CSS and SVG, no scripts, every value autoescaped.

    ``thresholds`` decide the brief's sentences (default: the ``ECLIPSE_BRIEF_*`` settings).
    """
    if thresholds is None:
        thresholds = BriefThresholds.from_settings(Settings.from_env())
    return html_template(TEMPLATE, trim_blocks=True).render(**_context(data, thresholds))
