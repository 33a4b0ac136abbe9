"""A job's status change as one atomic Redis script: the hash written, and a final status counted exactly once.

:class:`TransitionScript` is what :meth:`JobStatusStore.record_transition` runs. In one ``EVAL`` it reads the
job's old status, drops the fields that no longer apply, sets the new ones, renews the TTL, and, when the
status really changed to a final one (``completed``, ``failed``, ``rejected``, ``expired``), counts it in the
figures the queue's health and the Prometheus metrics read (``eclipse_exports/observability/``):

- :data:`~eclipse_exports.queue.keys.JOB_COUNTS`: ``{status}|{resource}|{format}`` += 1;
- :data:`~eclipse_exports.queue.keys.JOB_DURATION_HISTOGRAM`: XADD → final status in seconds (the XADD time is
  the ms part of the hash's ``streamEntryId``; jobs that never were on the stream, UI materializations, have
  none), not for ``expired``;
- :data:`~eclipse_exports.queue.keys.FILE_BYTES_HISTOGRAM`: a completed job's ``byteSize``;
- :data:`~eclipse_exports.queue.keys.RECENT_FINISHES`: one member per final status (not ``expired``) scored by
  Redis's own clock, trimmed to the last :data:`RECENT_WINDOW_SECONDS`.

Because the old status is read in the same script, two writers setting the same final status (the export
asset and the run-failure sensor, say) count it once, and a restart of any process loses nothing: the
figures live in Redis, so every instance reads one truth. Resource and format labels outside the
interface's vocabularies (a refused request's unreadable or unknown ones) are counted as ``unknown``.
"""

from typing import Any

import redis

from eclipse_exports.models import ExportFormat, JobStatus, ResourceType
from eclipse_exports.queue.keys import (
    FILE_BYTES_HISTOGRAM,
    JOB_COUNTS,
    JOB_DURATION_HISTOGRAM,
    RECENT_FINISHES,
    job_status_key,
)

FINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.REJECTED, JobStatus.EXPIRED})
DURATION_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 7200)
"""Upper bounds (seconds) of the XADD → final status histogram; above the last is ``+Inf``."""
BYTES_BUCKETS = (1024, 16 * 1024, 256 * 1024, 1024**2, 16 * 1024**2, 128 * 1024**2, 1024**3, 5 * 1024**3)
"""Upper bounds (bytes) of the completed files' size histogram; above the last is ``+Inf``."""
RECENT_WINDOW_SECONDS = 3600
UNKNOWN_LABEL = "unknown"
LABELS = "," + ",".join([r.value for r in ResourceType] + [f.value for f in ExportFormat]) + ","

# KEYS: 1 job hash, 2 JOB_COUNTS, 3 JOB_DURATION_HISTOGRAM, 4 FILE_BYTES_HISTOGRAM, 5 RECENT_FINISHES
# ARGV: 1 ttl, 2 new status, 3 '1' when the new status is final, 4 known labels (",a,b,"), 5 duration bounds,
#       6 byte bounds, 7 window seconds, 8 job id, 9 number of fields to drop, then those fields, then field/value
_SCRIPT = """
local key, new = KEYS[1], ARGV[2]
local old = redis.call('HGET', key, 'status')
local drop = tonumber(ARGV[9])
if drop > 0 then redis.call('HDEL', key, unpack(ARGV, 10, 9 + drop)) end
if #ARGV >= 10 + drop then redis.call('HSET', key, unpack(ARGV, 10 + drop)) end
redis.call('EXPIRE', key, ARGV[1])
if old == new or ARGV[3] ~= '1' then return old end
local info = redis.call('HMGET', key, 'resourceType', 'format', 'streamEntryId', 'byteSize')
local function label(value)
  if value and string.find(ARGV[4], ',' .. value .. ',', 1, true) then return value end
  return 'unknown'
end
local resource, format = label(info[1]), label(info[2])
redis.call('HINCRBY', KEYS[2], new .. '|' .. resource .. '|' .. format, 1)
if new == 'expired' then return old end
local function observe(histogram, bounds, value)
  local le = '+Inf'
  for bound in string.gmatch(bounds, '[^,]+') do
    if value <= tonumber(bound) then le = bound break end
  end
  local prefix = resource .. '|' .. format .. '|'
  redis.call('HINCRBY', histogram, prefix .. le, 1)
  redis.call('HINCRBY', histogram, prefix .. 'count', 1)
  redis.call('HINCRBYFLOAT', histogram, prefix .. 'sum', value)
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local millis = ''
local entry = info[3] and tonumber(string.match(info[3], '^(%d+)%-'))
if entry then
  local seconds = math.max(0, now - entry / 1000)
  observe(KEYS[3], ARGV[5], seconds)
  millis = string.format('%d', math.floor(seconds * 1000))
end
if new == 'completed' and info[4] and tonumber(info[4]) then observe(KEYS[4], ARGV[6], tonumber(info[4])) end
redis.call('ZADD', KEYS[5], now, new .. '|' .. resource .. '|' .. format .. '|' .. millis .. '|' .. ARGV[8])
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - tonumber(ARGV[7]))
return old
"""


class TransitionScript:
    """The status-change script on one Redis client (see the module docstring)."""

    def __init__(self, client: redis.Redis) -> None:
        self._script = client.register_script(_SCRIPT)

    def __call__(self, job_id: str, status: JobStatus, mapping: dict[str, str], drop: tuple[str, ...],
                 ttl_seconds: int, pipe: Any = None) -> Any:
        """Set ``status`` and ``mapping`` (strings) on the job's hash, delete ``drop`` first; queued on ``pipe``
        when given. Returns the old status (bytes or ``None``), or the pipeline when queued."""
        pairs = [x for name, value in mapping.items() if name not in drop for x in (name, value)]
        args = [ttl_seconds, status.value, "1" if status in FINAL_STATUSES else "0", LABELS,
                ",".join(map(str, DURATION_BUCKETS)), ",".join(map(str, BYTES_BUCKETS)), RECENT_WINDOW_SECONDS,
                job_id, len(drop), *drop, "status", status.value, *pairs]
        keys = [job_status_key(job_id), JOB_COUNTS, JOB_DURATION_HISTOGRAM, FILE_BYTES_HISTOGRAM, RECENT_FINISHES]
        return self._script(keys=keys, args=args, client=pipe)
