"""Where each queued run stands in Dagster's run queue: ``queuePosition`` of a ``queued`` job.

Dagster's ``QueuedRunCoordinator`` launches queued runs in priority order (the ``dagster/priority`` tag,
highest first), first come first served within a priority, skipping a run while a tag concurrency limit
blocks it (here: at most 2 runs per workspace) and launching none while ``max_concurrent_runs`` are in
progress. :func:`queue_positions` replays that on the queue as it is now, assuming runs in progress end
in the order they started, and numbers the queued runs in the order they would start: 1 starts next.
A run of a workspace that has its two runs going waits behind the other workspaces' runs, as it will.

Plain data in and out (the Dagster layer reads the runs and the instance's run queue settings); cost
O(queued runs × groups of runs sharing the same limited tags).
"""

from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

PRIORITY_TAG = "dagster/priority"


@dataclass(frozen=True)
class TagLimit:
    """One of the run queue's ``tag_concurrency_limits``: runs with tag ``key`` (and ``value`` when set; per
    distinct value when ``per_value``) at most ``limit`` at a time."""

    key: str
    limit: int
    value: str | None = None
    per_value: bool = False

    @classmethod
    def from_config(cls, config: Mapping) -> "TagLimit":
        """From Dagster's config shape: ``{"key": k, "limit": n, "value": v | {"applyLimitPerUniqueValue": b}}``."""
        value = config.get("value")
        if isinstance(value, str):
            return cls(config["key"], int(config["limit"]), value=value)
        return cls(config["key"], int(config["limit"]), per_value=bool(value and value.get("applyLimitPerUniqueValue")))


@dataclass(frozen=True)
class RunQueueLimits:
    """The run queue's limits: ``max_concurrent_runs`` (-1: none) and its tag limits."""

    max_concurrent_runs: int = -1
    tag_limits: tuple[TagLimit, ...] = ()


@dataclass(frozen=True)
class QueuedRun:
    """A queued run: its id and tags, in the order Dagster queued it."""

    run_id: str
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def priority(self) -> int:
        """The ``dagster/priority`` tag as an integer (0 when absent or not a number)."""
        try:
            return int(self.tags.get(PRIORITY_TAG, "0"))
        except ValueError:
            return 0


class _Counter:
    """Runs in progress counted per limited tag, as Dagster's ``TagConcurrencyLimitsCounter`` counts them."""

    def __init__(self, limits: Sequence[TagLimit]) -> None:
        self.limits = limits
        self.counts: dict[tuple[str, str | None], int] = defaultdict(int)

    def slots(self, tags: Mapping[str, str]) -> list[tuple[str, str | None]]:
        found = []
        for limit in self.limits:
            if limit.key not in tags:
                continue
            if limit.value is not None:
                if tags[limit.key] == limit.value:
                    found.append((limit.key, limit.value))
            else:
                found.append((limit.key, tags[limit.key] if limit.per_value else None))
        return found

    def limit_of(self, slot: tuple[str, str | None]) -> int:
        return min(limit.limit for limit in self.limits if limit.key == slot[0]
                   and (limit.value == slot[1] if limit.value is not None else
                        (slot[1] is not None) == limit.per_value))

    def blocked(self, slots: list[tuple[str, str | None]]) -> bool:
        return any(self.counts[slot] >= self.limit_of(slot) for slot in slots)

    def add(self, slots: list[tuple[str, str | None]], step: int = 1) -> None:
        for slot in slots:
            self.counts[slot] += step


def queue_positions(queued: Sequence[QueuedRun], in_progress: Sequence[Mapping[str, str]],
                    limits: RunQueueLimits) -> dict[str, int]:
    """Run id → place in the queue (1 = starts next) for every run of ``queued``.

    ``queued`` is in the order Dagster queued the runs (oldest first); ``in_progress`` holds the tags of the
    runs in progress, oldest first. Runs that could never start under the limits (a tag limit of 0) are
    numbered last, in queue order.
    """
    order = sorted(range(len(queued)), key=lambda i: -queued[i].priority)  # stable: first come first served
    counter = _Counter(limits.tag_limits)
    running: deque[list[tuple[str, str | None]]] = deque()
    for tags in in_progress:
        slots = counter.slots(tags)
        counter.add(slots)
        running.append(slots)
    groups: dict[tuple, deque[int]] = defaultdict(deque)
    slots_of: dict[tuple, list[tuple[str, str | None]]] = {}
    for rank, index in enumerate(order):
        slots = counter.slots(queued[index].tags)
        group = tuple(slots)
        groups[group].append(rank)
        slots_of[group] = slots
    cap = limits.max_concurrent_runs if limits.max_concurrent_runs >= 0 else None
    positions: dict[str, int] = {}
    while groups:
        free = [g for g in groups if not counter.blocked(slots_of[g])]
        if free and (cap is None or len(running) < cap):
            group = min(free, key=lambda g: groups[g][0])
            rank = groups[group].popleft()
            if not groups[group]:
                del groups[group]
            positions[queued[order[rank]].run_id] = len(positions) + 1
            counter.add(slots_of[group])
            running.append(slots_of[group])
        elif running:
            counter.add(running.popleft(), -1)
        else:  # blocked for good: a limit of 0
            for rank in sorted(r for g in groups.values() for r in g):
                positions[queued[order[rank]].run_id] = len(positions) + 1
            break
    return positions


def ordinal(number: int) -> str:
    """``1`` → ``1st``, ``2`` → ``2nd``, ``3`` → ``3rd``, ``11`` → ``11th``, ``22`` → ``22nd``."""
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"
