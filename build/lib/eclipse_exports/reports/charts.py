"""Geometry of the report's two inline SVG charts; the template draws them from these numbers.

Pure arithmetic, no markup: :func:`stacked_columns` lays out the alerts per
day stacked by severity, :func:`horizontal_bars` the infringements by type.
Coordinates are SVG user units (pixels at 100 %), y growing downwards.
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


@dataclass
class BarChart:
    """Horizontal bars, one row per category; ticks run along the x axis."""

    width: int
    height: int
    label_width: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    ticks: list[Tick]
    bars: list[Segment]


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


def horizontal_bars(items: list[tuple[object, int]], width: int = 720, row_height: int = 26,
                    label_width: int = 170) -> BarChart:
    """One bar per ``(key, count)`` in the given order; the x axis starts at 0."""
    plot_top = PLOT_TOP
    plot_bottom = plot_top + row_height * max(1, len(items))
    plot_right = width - PLOT_RIGHT_PAD - 40
    ticks = nice_ticks(max((n for _, n in items), default=0))
    scale = (plot_right - label_width) / ticks[-1]
    bars = [Segment(key, n, label_width, plot_top + i * row_height + row_height * 0.2, n * scale, row_height * 0.6)
            for i, (key, n) in enumerate(items)]
    return BarChart(width, int(plot_bottom + PLOT_BOTTOM_PAD), label_width, plot_right, plot_top, plot_bottom,
                    [Tick(t, label_width + t * scale, f"{t:,}") for t in ticks], bars)
