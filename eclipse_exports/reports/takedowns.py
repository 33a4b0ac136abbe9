"""Takedowns in detail: by action type, the most frequent failure results, time from detection to first action.

- **By action type**: actions with ``completed_at`` in the period and status
  ``completed`` or ``failed``, per ``action_type`` (success rate =
  completed ÷ (completed + failed)), the same set as the headline figures.
- **Failure results**: the ``result`` text of the period's failed actions,
  most frequent first (``None`` when an action gave none).
- **Time to first action**: for each infringement whose first action (its
  earliest ``created_at``) falls in the period, first action − ``detected_at``;
  the median over them.
"""

import statistics
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, func, select

from eclipse_exports.reports.queries import as_utc, between
from eclipse_exports.source.schema import actions, infringements

FAILURE_RESULTS_SHOWN = 5


@dataclass
class TakedownBreakdown:
    """``by_type`` ``{action_type: (completed, failed)}``; ``failure_results`` ``[(result, n)]`` most frequent first;
    ``first_action_median_seconds`` ``None`` when no infringement had its first action in the period."""

    by_type: dict = field(default_factory=dict)
    failure_results: list[tuple] = field(default_factory=list)
    failure_result_kinds: int = 0
    first_action_count: int = 0
    first_action_median_seconds: float | None = None


def collect_takedowns(conn: Connection, workspace_id: str, start: datetime, end: datetime,
                      shown: int = FAILURE_RESULTS_SHOWN) -> TakedownBreakdown:
    """The takedown breakdown of ``workspace_id`` for ``[start, end)``: three queries. Raises the database's errors."""
    finished = (actions.c.workspace_id == workspace_id, between(actions.c.completed_at, start, end))
    result = TakedownBreakdown()
    for action_type, status, n in conn.execute(
            select(actions.c.action_type, actions.c.status, func.count())
            .where(*finished, actions.c.status.in_(("completed", "failed")))
            .group_by(actions.c.action_type, actions.c.status)):
        completed, failed = result.by_type.get(action_type, (0, 0))
        result.by_type[action_type] = (completed + n, failed) if status == "completed" else (completed, failed + n)
    n = func.count().label("n")
    failures = conn.execute(select(actions.c.result, n).where(*finished, actions.c.status == "failed")
                            .group_by(actions.c.result).order_by(n.desc(), actions.c.result.asc().nulls_last())).all()
    result.failure_result_kinds = len(failures)
    result.failure_results = [(r, count) for r, count in failures[:shown]]

    first = (select(actions.c.infringement_id, func.min(actions.c.created_at).label("first_at"))
             .where(actions.c.workspace_id == workspace_id).group_by(actions.c.infringement_id).subquery())
    waits = [(as_utc(first_at) - as_utc(detected)).total_seconds() for first_at, detected in conn.execute(
        select(first.c.first_at, infringements.c.detected_at)
        .select_from(first.join(infringements, infringements.c.id == first.c.infringement_id))
        .where(infringements.c.workspace_id == workspace_id, infringements.c.detected_at.is_not(None),
               between(first.c.first_at, start, end)))]
    result.first_action_count = len(waits)
    result.first_action_median_seconds = statistics.median(waits) if waits else None
    return result
