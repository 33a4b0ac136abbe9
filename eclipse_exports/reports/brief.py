"""In brief: 3 to 5 plain sentences, built by rules from a report's figures, most urgent first.

No text generation service: each rule reads figures already counted for the
page and, when its threshold is crossed, says so with the number and its
comparison. Rules (thresholds are settings, :class:`BriefThresholds`):

- **backlog**: open infringements at the period's end rose by at least
  ``ECLIPSE_BRIEF_BACKLOG_GROWTH_PERCENT`` (default 5) on the previous period's end;
- **takedowns**: the success rate is under ``ECLIPSE_BRIEF_SUCCESS_RATE_PERCENT``
  (default 60) or fell by at least ``ECLIPSE_BRIEF_SUCCESS_DROP_POINTS`` (default 5)
  percentage points; more failed than completed is said so;
- **critical**: new critical alerts rose by at least ``ECLIPSE_BRIEF_CRITICAL_RISE_PERCENT``
  (default 20), or appeared after a period without any;
- **oldest**: the oldest open infringement is at least ``ECLIPSE_BRIEF_OLDEST_OPEN_DAYS``
  (default 30) days old at the period's end.

Urgency orders these (how far past its threshold a figure is, a failing
majority of takedowns first). Then, to make at least three sentences and at
most five, come the facts without a threshold: the brand with the most new
critical and high alerts, the backlog, the oldest open infringement. A week
where no rule fires is a quiet week, said in one sentence.

Each number is a :class:`Number` with a ``figure`` name, printed by the page
as ``<data data-figure="brief.…">`` so tests read it back.
"""

from dataclasses import dataclass

from eclipse_exports.config import Settings
from eclipse_exports.reports.figures import ReportData
from eclipse_exports.reports.wording import number, percent

TITLE_CHARS = 80
MAX_SENTENCES, MIN_SENTENCES = 5, 3


@dataclass(frozen=True)
class BriefThresholds:
    """When a figure is worth a sentence; percentages are 0–100, the drop in percentage points."""

    backlog_growth_percent: float = 5.0
    success_rate_percent: float = 60.0
    success_drop_points: float = 5.0
    critical_rise_percent: float = 20.0
    oldest_open_days: int = 30

    @classmethod
    def from_settings(cls, settings: Settings) -> "BriefThresholds":
        """The ``ECLIPSE_BRIEF_*`` settings."""
        return cls(settings.brief_backlog_growth_percent, settings.brief_success_rate_percent,
                   settings.brief_success_drop_points, settings.brief_critical_rise_percent,
                   settings.brief_oldest_open_days)


@dataclass(frozen=True)
class Number:
    """A number in a sentence: its figure name, exact value and the text shown."""

    figure: str
    value: float | int | None
    shown: str


@dataclass(frozen=True)
class Sentence:
    """One sentence: ``topic`` (``backlog``, ``takedowns``, ``critical``, ``oldest``, ``brand``, ``quiet``),
    ``urgency`` (1 or more when a threshold was crossed) and its parts, text and numbers in reading order."""

    topic: str
    urgency: float
    parts: tuple

    @property
    def text(self) -> str:
        """The sentence as plain text (the email's summary)."""
        return "".join(p.shown if isinstance(p, Number) else p for p in self.parts)

    def numbers(self) -> dict[str, float | int | None]:
        """``{figure: value}`` of the sentence's numbers."""
        return {p.figure: p.value for p in self.parts if isinstance(p, Number)}


def _growth(now: float, before: float | None) -> float | None:
    return (now - before) / before * 100 if before else None


def _days(seconds: float) -> int:
    return int(seconds // 86_400)


def _short(text: str | None) -> str:
    text = " ".join((text or "").split()) or "(no title)"
    return text if len(text) <= TITLE_CHARS else text[:TITLE_CHARS - 1] + "…"


def _backlog(data: ReportData, limits: BriefThresholds, previous_end: str) -> Sentence | None:
    now = data.open_infringement_count
    before = data.previous.open_infringement_count if data.previous else None
    growth = _growth(now, before)
    if growth is None or growth < limits.backlog_growth_percent:
        return None
    return Sentence("backlog", growth / limits.backlog_growth_percent, (
        "The open backlog rose ", Number("brief.backlog_growth_percent", round(growth, 1), f"{growth:.1f}%"),
        " to ", Number("brief.open_infringements", now, number(now)), " infringements (",
        Number("brief.open_infringements.previous", before, number(before)), f" at the end of {previous_end})."))


def _takedowns(data: ReportData, limits: BriefThresholds, noun: str, previous: str) -> Sentence | None:
    rate = data.takedown_success_rate
    before = data.previous.takedown_success_rate if data.previous else None
    if rate is None:
        return None
    drop = (before - rate) * 100 if before is not None else 0.0
    under = rate * 100 < limits.success_rate_percent
    if not under and drop < limits.success_drop_points:
        return None
    failed, completed = data.actions_failed, data.actions_completed
    urgency = max((limits.success_rate_percent - rate * 100) / 10 + 1 if under else 0,
                  drop / limits.success_drop_points) + (1 if failed > completed else 0)
    counts = (Number("brief.actions_failed", failed, number(failed)),
              Number("brief.actions_completed", completed, number(completed)))
    if failed > completed:
        opening = ("More takedowns failed (", counts[0], ") than completed (", counts[1],
                   f") {noun}: a success rate of ")
    else:
        opening = ("The takedown success rate ", noun, " was ")
    comparison = (() if before is None else
                  (", against ", Number("brief.takedown_success_rate.previous", before, percent(before)),
                   f" {previous}"))
    closing = ((f" ({counts[1].shown} completed, {counts[0].shown} failed)",) if failed <= completed else ()) + (
        f", under the {limits.success_rate_percent:g}% mark" if under else "", ".")
    return Sentence("takedowns", urgency, (*opening, Number("brief.takedown_success_rate", rate, percent(rate)),
                                           *comparison, *closing))


def _critical(data: ReportData, limits: BriefThresholds, noun: str, previous: str) -> Sentence | None:
    now = data.critical_alerts_new
    before = data.previous.critical_alerts_new if data.previous else None
    if before is None or now <= before:
        return None
    rise = _growth(now, before)
    if rise is not None and rise < limits.critical_rise_percent:
        return None
    urgency = rise / limits.critical_rise_percent if rise is not None else 1.0
    change = (("New critical alerts rose ", Number("brief.critical_rise_percent", round(rise), f"{rise:.0f}%"),
               " to ") if rise is not None else ("New critical alerts appeared: ",))
    return Sentence("critical", urgency, (*change, Number("brief.critical_alerts_new", now, number(now)), f" {noun} (",
                                          Number("brief.critical_alerts_new.previous", before, number(before)),
                                          f" {previous})."))


def _oldest(data: ReportData, limits: BriefThresholds) -> Sentence | None:
    age = data.ageing.oldest_age_seconds
    if age is None:
        return None
    days, oldest = _days(age), data.ageing.oldest[0]
    over = data.ageing.buckets.get("over_90", 0)
    # Past its threshold the age is an alarm, but one that grows slowly: a week's movement ranks first.
    urgency = 1 + 0.25 * (days / limits.oldest_open_days - 1) if days >= limits.oldest_open_days else 0.1
    return Sentence("oldest", urgency, (
        f"The oldest open infringement, “{_short(oldest['title'])}”, has been open ",
        Number("brief.oldest_open_days", days, f"{days:,} days"), f" (detected {oldest['detected_at']:%-d %b %Y})",
        *((", and ", Number("brief.open_over_90_days", over, number(over)), " have been open 90 days or more")
          if over else ()), "."))


def _brand(data: ReportData, previous: str) -> Sentence | None:
    if not data.brands:
        return None
    top = data.brands[0]
    difference = top.alerts - top.alerts_previous
    change = f"{'up' if difference > 0 else 'down'} {abs(difference):,} on {previous}" if difference else \
        f"as many as {previous}"
    return Sentence("brand", 0.3, (
        top.name or "Alerts without a brand", " drew the most new critical and high alerts: ",
        Number("brief.top_brand_alerts", top.alerts, number(top.alerts)), f" ({change}), with ",
        Number("brief.top_brand_open", top.open_infringements, number(top.open_infringements)),
        " open infringements."))


def _backlog_level(data: ReportData, previous_end: str) -> Sentence:
    now = data.open_infringement_count
    before = data.previous.open_infringement_count if data.previous else None
    parts: tuple = ("The open backlog stands at ", Number("brief.open_infringements", now, number(now)))
    if before is not None:
        parts += (" infringements (", Number("brief.open_infringements.previous", before, number(before)),
                  f" at the end of {previous_end}).")
    else:
        parts += (" infringements.",)
    return Sentence("backlog", 0.2, parts)


def _quiet(data: ReportData, noun: str, previous_end: str) -> Sentence:
    now = data.open_infringement_count
    before = data.previous.open_infringement_count if data.previous else None
    rate = data.takedown_success_rate
    parts: tuple = (f"A quiet {noun.removeprefix('this ').removeprefix('in this ')}: no figure crossed its "
                    "threshold; the open backlog is ", Number("brief.open_infringements", now, number(now)))
    if before is not None:
        parts += (" (", Number("brief.open_infringements.previous", before, number(before)), f" at the end of "
                  f"{previous_end})",)
    if rate is not None:
        parts += (" and the takedown success rate ", Number("brief.takedown_success_rate", rate, percent(rate)))
    return Sentence("quiet", 0.0, (*parts, "."))


def build_brief(data: ReportData, limits: BriefThresholds, noun: str, previous: str) -> list[Sentence]:
    """The sentences of ``data``'s brief: 3 to 5, most urgent first, or one for a quiet period.

    ``noun`` reads ``this week`` or ``in this period``; ``previous`` ``the previous week`` (or days).
    """
    previous_end = previous
    alarms = [s for s in (_backlog(data, limits, previous_end), _takedowns(data, limits, noun, previous),
                          _critical(data, limits, noun, previous), _oldest(data, limits))
              if s is not None and s.urgency >= 1]
    if not alarms:
        return [_quiet(data, noun, previous_end)]
    alarms.sort(key=lambda s: -s.urgency)
    topics = {s.topic for s in alarms}
    facts = [s for s in (_brand(data, previous), None if "backlog" in topics else _backlog_level(data, previous_end),
                         None if "oldest" in topics else _oldest(data, limits)) if s is not None]
    sentences = alarms[:MAX_SENTENCES]
    for fact in facts:
        if len(sentences) >= MIN_SENTENCES and fact.topic != "brand" or len(sentences) >= MAX_SENTENCES:
            break
        sentences.append(fact)
    return sentences
