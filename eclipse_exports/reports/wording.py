"""How a report says things: vocabulary values as words, counts, rates, durations, dates and periods (all UTC).

Shared by the page (:mod:`~eclipse_exports.reports.page`), the brief
(:mod:`~eclipse_exports.reports.brief`) and the email summary.
"""

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eclipse_exports.reports.figures import ReportData

SEVERITY_ORDER = ("critical", "high", "medium", "low")
WORDS = {
    "severity": {"critical": "Critical", "high": "High", "medium": "Medium", "low": "Low"},
    "alert_status": {"new": "New", "acknowledged": "Acknowledged", "resolved": "Resolved", "dismissed": "Dismissed"},
    "infringement_type": {"phishing": "Phishing", "counterfeit": "Counterfeit", "impersonation": "Impersonation",
                          "trademark": "Trademark misuse", "domain_squatting": "Domain squatting",
                          "social_media": "Social media"},
    "action_type": {"takedown_request": "Takedown request", "cease_and_desist": "Cease and desist",
                    "platform_report": "Platform report", "dmca_notice": "DMCA notice", "monitoring": "Monitoring"},
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


def period_noun(data: "ReportData") -> str:
    """``this week`` for a calendar week, else ``in this period``."""
    return "this week" if is_week(data.period_start, data.period_end) else "in this period"


def previous_noun(data: "ReportData") -> str:
    """``the previous week``, ``the previous 30 days`` or ``the previous 36 hours``."""
    length = data.period_end - data.period_start
    if is_week(data.period_start, data.period_end):
        return "the previous week"
    if length % timedelta(days=1) == timedelta(0):
        return f"the previous {length.days} days"
    return f"the previous {length.total_seconds() / 3600:g} hours"
