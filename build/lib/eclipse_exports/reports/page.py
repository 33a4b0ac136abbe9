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
from datetime import UTC, datetime, timedelta

from eclipse_exports.reports.charts import horizontal_bars, stacked_columns
from eclipse_exports.reports.figures import LIST_LIMIT, ReportData
from eclipse_exports.reports.rendering import html_template

TEMPLATE = "executive_report.html"
TITLE_CHARS = 160

SEVERITY_ORDER = ("critical", "high", "medium", "low")
WORDS = {
    "severity": {"critical": "Critical", "high": "High", "medium": "Medium", "low": "Low"},
    "alert_status": {"new": "New", "acknowledged": "Acknowledged", "resolved": "Resolved", "dismissed": "Dismissed"},
    "infringement_type": {"phishing": "Phishing", "counterfeit": "Counterfeit", "impersonation": "Impersonation",
                          "trademark": "Trademark misuse", "domain_squatting": "Domain squatting",
                          "social_media": "Social media"},
    "infringement_status": {"open": "Open", "in_review": "In review", "takedown_requested": "Takedown requested",
                            "resolved": "Resolved", "rejected": "Rejected"},
}
NOT_SET = "Not set"


def word(vocabulary: str, value: object) -> str:
    """A vocabulary value as words; ``None`` is "Not set"; a value outside the vocabulary is shown as it is."""
    if value is None:
        return NOT_SET
    return WORDS[vocabulary].get(value, str(value))


def slug(vocabulary: str, value: object) -> str:
    """A CSS-safe name for a value: itself when in the vocabulary, ``not_set`` for ``None``, else ``other``."""
    if value is None:
        return "not_set"
    return str(value) if value in WORDS[vocabulary] else "other"


def number(n: int) -> str:
    """``1234`` → ``1,234``."""
    return f"{n:,}"


def day(moment: datetime) -> str:
    """``Mon 23 Nov 2026`` (the UTC date)."""
    return moment.astimezone(UTC).strftime("%a %-d %b %Y")


def moment_utc(moment: datetime | None) -> str:
    """``23 Nov 2026, 14:05 UTC``; empty for ``None``."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%-d %b %Y, %H:%M UTC")


def duration(seconds: float | None) -> str:
    """A takedown time in the unit a reader expects: ``45 minutes``, ``31.5 hours``, ``3.2 days``; ``—`` for none."""
    if seconds is None:
        return "—"
    if seconds < 3600:
        return f"{round(seconds / 60):,} minutes"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:,.1f} hours"
    return f"{seconds / 86400:,.1f} days"


def percent(rate: float | None) -> str:
    """``0.8333`` → ``83.3%``; ``—`` for none."""
    return "—" if rate is None else f"{rate * 100:.1f}%"


def is_week(start: datetime, end: datetime) -> bool:
    """Whether ``[start, end)`` is a calendar week, Monday 00:00 UTC to the next."""
    start = start.astimezone(UTC)
    return end - start == timedelta(days=7) and start.weekday() == 0 and start.time() == datetime.min.time()


def period_label(start: datetime, end: datetime, say_utc: bool = True) -> str:
    """``Mon 23 Nov 2026 – Sun 29 Nov 2026 (UTC)`` for whole days, else both moments with their time.

    ``say_utc=False`` leaves out the ``(UTC)`` of whole days (for text that says it already).
    """
    whole_days = start.astimezone(UTC).time() == end.astimezone(UTC).time() == datetime.min.time()
    if whole_days:
        return f"{day(start)} – {day(end - timedelta(days=1))}" + (" (UTC)" if say_utc else "")
    return f"{moment_utc(start)} – {moment_utc(end)}"


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


def _types_chart(data: ReportData) -> dict:
    rows = sorted(ordered(data.infringements_by_type, "infringement_type"), key=lambda r: -r[1])
    geometry = horizontal_bars(rows)
    description = "; ".join(f"{word('infringement_type', key)}: {number(n)}" for key, n in rows)
    return {"geometry": geometry, "rows": rows, "description": (description or "none") + "."}


def period_noun(data: ReportData) -> str:
    """``this week`` for a calendar week, else ``in this period``."""
    return "this week" if is_week(data.period_start, data.period_end) else "in this period"


def previous_noun(data: ReportData) -> str:
    """``the previous week``, ``the previous 30 days`` or ``the previous 36 hours``."""
    length = data.period_end - data.period_start
    if is_week(data.period_start, data.period_end):
        return "the previous week"
    if length % timedelta(days=1) == timedelta(0):
        return f"the previous {length.days} days"
    return f"the previous {length.total_seconds() / 3600:g} hours"


def _context(data: ReportData) -> dict:
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
        "types_chart": _types_chart(data),
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


def render_report(data: ReportData) -> str:
    """The report as one HTML page (UTF-8 text): inline CSS and SVG, no scripts, every value autoescaped."""
    return html_template(TEMPLATE, trim_blocks=True).render(**_context(data))
