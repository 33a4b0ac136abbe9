"""Geometry of the report's inline SVG charts; the template draws them from these numbers.

Pure arithmetic, no markup: :func:`stacked_columns` lays out the alerts per
day stacked by severity; :func:`trend_columns` and :func:`trend_line` the
small multiples of the 12-week trends. Coordinates are SVG user units
(pixels at 100 %), y growing downwards.
"""

from dataclasses import dataclass, field

PLOT_LEFT, PLOT_TOP, PLOT_RIGHT_PAD, PLOT_BOTTOM_PAD = 56, 12, 12, 44


@dataclass(frozen=True)
class Tick:
    """An axis tick: its value, its position along the axis, and its label."""

    value: int
    position: float
    label: str


@dataclass(frozen=True)
class Segment:
    """One rectangle of a chart: ``key`` names the series (a severity, or a type)."""

    key: object
    count: int
    x: float
    y: float
    width: float
    height: float


@dataclass
class Column:
    """One stacked column: its label under the axis (may be empty when labels are thinned) and its segments.

    ``day`` is the ISO date of the column's first day.
    """

    label: str
    day: str
    total: int
    x: float
    width: float
    segments: list[Segment] = field(default_factory=list)


@dataclass
class ColumnChart:
    """Stacked columns with a value axis on the left; ``baseline`` is the y of zero."""

    width: int
    height: int
    plot_left: float
    plot_right: float
    plot_top: float
    baseline: float
    ticks: list[Tick]
    columns: list[Column]


def nice_ticks(maximum: int, count: int = 4) -> list[int]:
    """Round tick values from 0 covering ``maximum``: steps of 1, 2 or 5 × 10ⁿ, about ``count`` of them."""
    if maximum <= 0:
        return [0, 1]
    raw = maximum / count
    magnitude = 10 ** (len(str(int(raw))) - 1) if raw >= 1 else 1
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    top = -(-maximum // step) * step
    return list(range(0, top + 1, step))


def stacked_columns(labels: list[str], days: list[str], counts: list[dict], order: list, width: int = 720,
                    height: int = 240) -> ColumnChart:
    """Columns for ``labels[i]`` (first day ``days[i]``) stacked from ``counts[i]`` (``{key: n}``), keys drawn
    bottom-up in ``order``.

    Keys of ``counts`` missing from ``order`` are drawn last. Labels are thinned
    so at most about 16 show.
    """
    plot_right = width - PLOT_RIGHT_PAD
    baseline = height - PLOT_BOTTOM_PAD
    totals = [sum(c.values()) for c in counts]
    ticks = nice_ticks(max(totals, default=0))
    scale = (baseline - PLOT_TOP) / ticks[-1]
    slot = (plot_right - PLOT_LEFT) / max(1, len(labels))
    every = max(1, -(-len(labels) // 16))
    columns = []
    for i, (label, day, by_key, total) in enumerate(zip(labels, days, counts, totals, strict=True)):
        x = PLOT_LEFT + i * slot + slot * 0.15
        column = Column(label if i % every == 0 else "", day, total, x, slot * 0.7)
        top = baseline
        keys = [k for k in order if k in by_key] + [k for k in by_key if k not in order]
        for key in keys:
            h = by_key[key] * scale
            top -= h
            column.segments.append(Segment(key, by_key[key], x, top, slot * 0.7, h))
        columns.append(column)
    return ColumnChart(width, height, PLOT_LEFT, plot_right, PLOT_TOP, baseline,
                       [Tick(t, baseline - t * scale, f"{t:,}") for t in ticks], columns)


@dataclass(frozen=True)
class TrendMark:
    """One week of a small multiple: ``week`` its ISO start date, ``value`` ``None`` for no data (no mark drawn).

    A column chart's marks carry ``segments`` (stacked from the bottom); a line's are points at ``(x, y)``.
    """

    week: str
    value: float | None
    x: float
    y: float
    current: bool
    segments: tuple[Segment, ...] = ()


@dataclass
class SmallMultiple:
    """A small chart of 12 weeks: a polyline (``path``, empty for columns) or stacked columns, ``top`` the value
    of the plot's top edge, ``column_width`` the width of a column."""

    width: int
    height: int
    plot_top: float
    baseline: float
    top: float
    marks: list[TrendMark]
    path: str = ""
    column_width: float = 0.0


SMALL_WIDTH, SMALL_HEIGHT, SMALL_PAD = 300, 84, 6


def _small_scale(values: list[float | None], ceiling: float | None) -> tuple[float, float, float]:
    top = ceiling if ceiling is not None else max((v for v in values if v is not None), default=0) or 1
    baseline = SMALL_HEIGHT - SMALL_PAD
    return top, baseline, (baseline - SMALL_PAD) / top


def trend_line(weeks: list[str], values: list[float | None], current: int, ceiling: float | None = None) -> \
        SmallMultiple:
    """A line over ``values`` (one per week, oldest first; ``None`` breaks the line); ``current`` is the marked index.

    The y axis starts at 0 and ends at ``ceiling`` (a rate: 1) or the largest value.
    """
    top, baseline, scale = _small_scale(values, ceiling)
    slot = (SMALL_WIDTH - 2 * SMALL_PAD) / max(1, len(weeks) - 1)
    marks = [TrendMark(week, value, SMALL_PAD + i * slot, baseline - (value or 0) * scale, i == current)
             for i, (week, value) in enumerate(zip(weeks, values, strict=True))]
    path, pen_down = [], False
    for mark in marks:
        if mark.value is None:
            pen_down = False
            continue
        path.append(f"{'L' if pen_down else 'M'}{mark.x:.1f} {mark.y:.1f}")
        pen_down = True
    return SmallMultiple(SMALL_WIDTH, SMALL_HEIGHT, SMALL_PAD, baseline, top, marks, path=" ".join(path))


def trend_columns(weeks: list[str], counts: list[dict], order: list, current: int) -> SmallMultiple:
    """Stacked columns of ``counts`` (``{key: n}`` per week, keys bottom-up in ``order``, others last)."""
    totals = [sum(c.values()) for c in counts]
    top, baseline, scale = _small_scale(totals, None)
    slot = (SMALL_WIDTH - 2 * SMALL_PAD) / max(1, len(weeks))
    width = slot * 0.7
    marks = []
    for i, (week, by_key, total) in enumerate(zip(weeks, counts, totals, strict=True)):
        x, y, segments = SMALL_PAD + i * slot + slot * 0.15, baseline, []
        for key in [k for k in order if k in by_key] + [k for k in by_key if k not in order]:
            h = by_key[key] * scale
            y -= h
            segments.append(Segment(key, by_key[key], x, y, width, h))
        marks.append(TrendMark(week, total, x, y, i == current, tuple(segments)))
    return SmallMultiple(SMALL_WIDTH, SMALL_HEIGHT, SMALL_PAD, baseline, top, marks, column_width=width)
