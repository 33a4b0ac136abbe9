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

The same script appends the change to the workspace's export audit trail (``eclipse:exports:audit:{ws}``, see
``eclipse_exports/audit/trail.py``) when the status really changed: ``requested`` when a job is first seen past
``pending`` (by whoever picked it up), then ``rejected``, ``run_started``, ``requeued`` (back to ``queued`` for
a run retry), ``completed`` (with ``link_issued`` by the run when it carries a ``downloadUrl``), ``failed`` or
``expired``, each with the fields that say what happened. ``requested`` and the outcomes (``rejected``,
``completed``, ``failed``, ``expired``) have the event id ``{jobId}:{event}``: a job re-run after a crash that
completes again (replacing its file) writes the same event again, and readers keep one per event id.
A status hash whose ``workspaceId`` is not a valid id, or names a workspace that does not exist
(``unknown_workspace``), is recorded in no workspace's trail (the dead letter or the status keeps it).

Because the old status is read in the same script, two writers setting the same final status (the export
asset and the run-failure sensor, say) count it once, and a restart of any process loses nothing: the
figures live in Redis, so every instance reads one truth. Resource and format labels outside the
interface's vocabularies (a refused request's unreadable or unknown ones) are counted as ``unknown``.
"""

import json
import uuid
from typing import Any

import redis

from eclipse_exports.models import ExportFormat, JobStatus, ResourceType
from eclipse_exports.queue.keys import (
    AUDIT_STREAM_PREFIX,
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
#       6 byte bounds, 7 window seconds, 8 job id, 9 audit stream prefix, 10 event id, 11 actor ('' = derived),
#       12 extra audit details (JSON object), 13 number of fields to drop, then those fields, then field/value
_SCRIPT = """
local key, new = KEYS[1], ARGV[2]
local old = redis.call('HGET', key, 'status')
local drop = tonumber(ARGV[13])
if drop > 0 then redis.call('HDEL', key, unpack(ARGV, 14, 13 + drop)) end
if #ARGV >= 14 + drop then redis.call('HSET', key, unpack(ARGV, 14 + drop)) end
redis.call('EXPIRE', key, ARGV[1])
if old ~= new then
  local ws = redis.call('HGET', key, 'workspaceId')
  local unknown = new == 'rejected' and redis.call('HGET', key, 'errorCode') == 'unknown_workspace'
  if ws and not unknown and #ws <= 64 and string.match(ws, '^[A-Za-z0-9_-]+$') then
    local h = redis.call('HMGET', key, 'userId', 'runId', 'filePath', 'byteSize', 'rowCount', 'errorCode', 'error',
                         'request', 'retryOf', 'downloadUrl', 'expiresAt')
    for i = 1, 11 do if h[i] == false then h[i] = nil end end
    local stream = ARGV[9] .. ws
    local function add(id, actor, event, d)
      redis.call('XADD', stream, '*', 'eventId', id, 'jobId', ARGV[8], 'actor', actor, 'event', event,
                 'details', cjson.encode(d))
    end
    local requester = h[1] or 'unknown'
    local system = ARGV[11] ~= '' and ARGV[11] or 'system'
    if (old == false or old == 'pending') and new ~= 'pending' then
      local d = {}
      if h[8] then
        local ok, request = pcall(cjson.decode, h[8])
        if ok then d['request'] = request end
      end
      if h[9] then d['retryOf'] = h[9] end
      add(ARGV[8] .. ':requested', requester, 'requested', d)
    end
    local d = cjson.decode(ARGV[12])
    local event, actor = nil, system
    if new == 'rejected' then
      event, actor = 'rejected', requester
      d['errorCode'], d['error'] = h[6], h[7]
    elseif new == 'running' then
      event = 'run_started'
      d['runId'] = h[2]
    elseif new == 'queued' and old ~= false and old ~= 'pending' then
      event = 'requeued'
      d['previousStatus'] = old
    elseif new == 'completed' then
      event = 'completed'
      d['runId'], d['filePath'], d['byteSize'], d['rowCount'] = h[2], h[3], tonumber(h[4]), tonumber(h[5])
    elseif new == 'failed' then
      event = 'failed'
      d['runId'], d['errorCode'], d['error'] = h[2], h[6], h[7]
    elseif new == 'expired' then
      event = 'expired'
      d['filePath'] = h[3]
    end
    if event then
      local once = {rejected = true, completed = true, failed = true, expired = true}
      add(once[event] and (ARGV[8] .. ':' .. event) or ARGV[10], actor, event, d)
    end
    if new == 'completed' and h[10] then
      add(ARGV[10] .. '-l', system, 'link_issued', {by = 'run', filePath = h[3], fileExpiresAt = h[11]})
    end
  end
end
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
                 ttl_seconds: int, pipe: Any = None, actor: str = "", audit_details: dict | None = None) -> Any:
        """Set ``status`` and ``mapping`` (strings) on the job's hash, delete ``drop`` first; queued on ``pipe``
        when given. Returns the old status (bytes or ``None``), or the pipeline when queued.

        ``actor`` is who made a system change (``system:run``…; empty: ``system``); ``audit_details`` (a JSON
        object) joins the details the audit entry takes from the hash (a completed file's ``sha256``, say).
        """
        pairs = [x for name, value in mapping.items() if name not in drop for x in (name, value)]
        details = json.dumps(audit_details or {}, separators=(",", ":"))
        args = [ttl_seconds, status.value, "1" if status in FINAL_STATUSES else "0", LABELS,
                ",".join(map(str, DURATION_BUCKETS)), ",".join(map(str, BYTES_BUCKETS)), RECENT_WINDOW_SECONDS,
                job_id, AUDIT_STREAM_PREFIX, uuid.uuid4().hex, actor, details, len(drop), *drop,
                "status", status.value, *pairs]
        keys = [job_status_key(job_id), JOB_COUNTS, JOB_DURATION_HISTOGRAM, FILE_BYTES_HISTOGRAM, RECENT_FINISHES]
        return self._script(keys=keys, args=args, client=pipe)
