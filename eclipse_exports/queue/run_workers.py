"""The Celery run workers' shared record in Redis, without Dagster: which worker groups are alive, which delivery of a
run's task executes it, which child is executing a run right now, and which runs an operator asked to stop.

Celery alone cannot answer these: a task's result state says ``STARTED`` forever once the whole worker group that
ran it is SIGKILLed, a broker may deliver a task twice (a restored unacknowledged message), and a worker that
is gone looks the same as one that is busy. Each record here is a key of its own (``queue/keys.py``) that
expires unless its owner refreshes it, so a dead owner's record disappears by itself.
"""

import json
import time
from dataclasses import dataclass

import redis

from eclipse_exports.queue.keys import RUN_WORKER_NODES, run_cancel_key, run_claim_key, run_heartbeat_key

# A worker group's parent refreshes its entry every NODE_BEAT_SECONDS; one older than NODE_STALE_SECONDS is dead.
NODE_BEAT_SECONDS = 2.0
NODE_STALE_SECONDS = 15.0
# A child refreshes its run's heartbeat every RUN_BEAT_SECONDS; it expires RUN_BEAT_TTL_SECONDS after the last.
RUN_BEAT_SECONDS = 3.0
RUN_BEAT_TTL_SECONDS = 20
# A claim outlives any run (the longest export is hours), so a late second delivery always finds it.
CLAIM_TTL_SECONDS = 3 * 24 * 3600
CANCEL_TTL_SECONDS = 24 * 3600


@dataclass(frozen=True)
class WorkerNode:
    """One live worker group: its Celery node name, the queues it consumes, its size, host and parent pid."""

    name: str
    queues: tuple[str, ...]
    concurrency: int
    host: str
    pid: int
    seen_seconds_ago: float


@dataclass(frozen=True)
class RunBeat:
    """The child executing a run: its worker node, pid, and how many seconds ago it last reported."""

    node: str
    pid: int
    seconds_ago: float


class RunWorkerRegistry:
    """Reads and writes the run workers' records on ``client`` (a ``redis.Redis``; any errors it raises pass
    through)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def beat_node(self, name: str, queues: list[str], concurrency: int, host: str, pid: int) -> None:
        """Record worker group ``name`` as alive now (called by its parent every :data:`NODE_BEAT_SECONDS`)."""
        self.client.hset(RUN_WORKER_NODES, name, json.dumps({"queues": queues, "concurrency": concurrency,
                                                             "host": host, "pid": pid, "at": time.time()}))

    def forget_node(self, name: str) -> None:
        """Remove worker group ``name`` (its clean shutdown)."""
        self.client.hdel(RUN_WORKER_NODES, name)

    def live_nodes(self, queue: str | None = None) -> list[WorkerNode]:
        """The worker groups seen within :data:`NODE_STALE_SECONDS` (consuming ``queue``, when given), by name.
        Entries of groups dead for an hour are removed as they are read."""
        now, found, dead = time.time(), [], []
        for raw_name, raw in self.client.hgetall(RUN_WORKER_NODES).items():
            name = raw_name.decode() if isinstance(raw_name, bytes) else raw_name
            entry = json.loads(raw)
            age = now - float(entry["at"])
            if age > 3600:
                dead.append(name)
            if age > NODE_STALE_SECONDS or (queue is not None and queue not in entry["queues"]):
                continue
            found.append(WorkerNode(name, tuple(entry["queues"]), int(entry["concurrency"]), entry["host"],
                                    int(entry["pid"]), age))
        if dead:
            self.client.hdel(RUN_WORKER_NODES, *dead)
        return sorted(found, key=lambda n: n.name)

    def claim_run(self, run_id: str, node: str, attempt: int = 0) -> bool:
        """Whether this delivery (on worker ``node``) is the one that executes run ``run_id``'s ``attempt``:
        the first caller wins, atomically across every worker; every later delivery gets ``False``."""
        return bool(self.client.set(run_claim_key(run_id, attempt), node, nx=True, ex=CLAIM_TTL_SECONDS))

    def claimed_by(self, run_id: str, attempt: int = 0) -> str | None:
        """The worker node whose delivery claimed run ``run_id``'s ``attempt``, or ``None``."""
        raw = self.client.get(run_claim_key(run_id, attempt))
        return raw.decode() if isinstance(raw, bytes) else raw

    def beat_run(self, run_id: str, node: str, pid: int) -> None:
        """Record that child ``pid`` of ``node`` is executing run ``run_id`` (expires after
        :data:`RUN_BEAT_TTL_SECONDS` unless refreshed)."""
        self.client.set(run_heartbeat_key(run_id), json.dumps({"node": node, "pid": pid, "at": time.time()}),
                        ex=RUN_BEAT_TTL_SECONDS)

    def run_beat(self, run_id: str) -> RunBeat | None:
        """The child executing run ``run_id`` as it last reported, or ``None`` when no child has for
        :data:`RUN_BEAT_TTL_SECONDS` (it finished, or it died)."""
        raw = self.client.get(run_heartbeat_key(run_id))
        if raw is None:
            return None
        entry = json.loads(raw)
        return RunBeat(entry["node"], int(entry["pid"]), time.time() - float(entry["at"]))

    def end_run(self, run_id: str) -> None:
        """The child is done with run ``run_id``: drop its heartbeat and any cancel request."""
        self.client.delete(run_heartbeat_key(run_id), run_cancel_key(run_id))

    def request_cancel(self, run_id: str) -> None:
        """Ask the child executing run ``run_id`` to stop it (it checks every :data:`RUN_BEAT_SECONDS`)."""
        self.client.set(run_cancel_key(run_id), "1", ex=CANCEL_TTL_SECONDS)

    def cancel_requested(self, run_id: str) -> bool:
        """Whether an operator asked to stop run ``run_id``."""
        return bool(self.client.exists(run_cancel_key(run_id)))
