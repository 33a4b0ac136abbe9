"""Commands about export requests and their jobs: ``request``, ``status``, ``url``, ``jobs``, ``retry``,
``dead-letters``.

They talk to Redis (and ``url`` to S3) and never import Dagster, pyarrow or SQLAlchemy: each answers in a
fraction of a second (``bench/cli_latency.py``).
"""

import json
import os
import sys
import time
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import click

from eclipse_exports.cli import common
from eclipse_exports.models import ExportRequest, InvalidRequest, JobStatus

RETRYABLE = (JobStatus.FAILED, JobStatus.EXPIRED)
WATCH_LINE_WIDTH = 100  # a redrawn line is padded so a shorter one leaves nothing of the last behind


def _payload_from_file(path: str) -> dict:
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        common.fail(f"cannot read a JSON request from {path}: {exc}")
    if not isinstance(payload, dict):
        common.fail(f"{path} holds no JSON object")
    return payload


@click.command("request")
@click.option("--file", "payload_file", type=click.Path(dir_okay=False),
              help="Send this JSON request (e.g. from examples/requests/) under a new id; other options ignored.")
@click.option("--workspace")
@click.option("--user")
@click.option("--resource", type=click.Choice(["alerts", "infringements", "actions", "audit_logs", "export_audit",
                                               "report"]))
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "jsonl", "parquet", "html"]))
@click.option("--severity", multiple=True, help="Repeat for several values.")
@click.option("--status", "statuses", multiple=True, help="Repeat for several values.")
@click.option("--brand", multiple=True, help="Brand name; repeat for several.")
@click.option("--from", "date_from", help="Inclusive, ISO-8601 with offset, e.g. 2026-11-01T00:00:00Z.")
@click.option("--to", "date_to", help="Exclusive, ISO-8601 with offset.")
@click.option("--action", "actions", multiple=True,
              help="audit_logs: a dotted verb (alert.acknowledged) or a prefix (member.*); repeat for several.")
@click.option("--actor", "actors", multiple=True, help="audit_logs: the acting user's id; repeat for several.")
@click.option("--compression", type=click.Choice(["none", "gzip"]), default="none", show_default=True)
@click.option("--excel-compatible", is_flag=True, help="CSV only: UTF-8 BOM and CRLF line ends.")
@click.option("--delivery", type=click.Choice(["download", "email"]), default="download", show_default=True)
@click.option("--id", "job_id", help="Request id (default: a new UUID).")
def request_cmd(payload_file: str | None, workspace: str | None, user: str | None, resource: str | None,
                fmt: str | None, severity: tuple, statuses: tuple, brand: tuple, date_from: str | None,
                date_to: str | None, actions: tuple, actors: tuple, compression: str, excel_compatible: bool,
                delivery: str, job_id: str | None) -> None:
    """Put an export request on the Redis stream and print its job id.

    \b
    Examples:
      eclipse-exports request --workspace ws_acme --user usr_acme_analyst --resource alerts --format csv
      eclipse-exports request --workspace ws_acme --user usr_acme_analyst --resource infringements \\
          --format jsonl --severity critical --compression gzip
      eclipse-exports request --workspace ws_acme --user usr_acme_owner --resource audit_logs --format csv \\
          --action 'member.*' --from 2026-11-01T00:00:00Z
      eclipse-exports request --file examples/requests/alerts-parquet-filtered.json
    """
    if payload_file:
        payload = _payload_from_file(payload_file)
        payload["id"] = job_id or str(uuid.uuid4())
    else:
        missing = [name for name, value in (("--workspace", workspace), ("--user", user), ("--resource", resource),
                                            ("--format", fmt)) if not value]
        if missing:
            raise click.UsageError(f"missing {', '.join(missing)} (or give --file)")
        filters = {k: v for k, v in {"severity": list(severity) or None, "status": list(statuses) or None,
                                     "brand": list(brand) or None, "from": date_from, "to": date_to,
                                     "action": list(actions) or None, "actor": list(actors) or None}.items() if v}
        options: dict = {"compression": compression}
        if excel_compatible:
            options["excelCompatible"] = True
        payload = {"id": job_id or str(uuid.uuid4()), "workspaceId": workspace, "userId": user,
                   "resourceType": resource, "format": fmt, "filters": filters, "options": options,
                   "delivery": delivery}
    payload.setdefault("createdAt", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    try:
        request = ExportRequest.from_payload(json.dumps(payload))
    except InvalidRequest as exc:
        common.fail(f"invalid request: {exc}")
    click.echo(_enqueue(request))


def _enqueue(request: ExportRequest, extra: dict[str, str] | None = None) -> str:
    from eclipse_exports.queue.producer import enqueue_request

    settings = common.settings()
    with common.service_errors(settings):
        store = common.store(settings)
        if store.exists(request.id):
            common.fail(f"job id '{request.id}' is already in use; request ids must be unique")
        enqueue_request(store.client, request, settings.retention_hours, extra)
    return request.id


def _progress_line(fields: dict[str, str], now: datetime | None = None) -> str:
    """One line of ``status --watch``: the bar, rows, status, and the place in the queue or the time left."""
    pct = int(fields.get("progress") or 0)
    bar = "#" * (pct // 4) + "-" * (25 - pct // 4)
    rows = fields.get("rowsWritten") or "0"
    total = fields.get("rowCount") or "?"
    total_text = total if total == "?" else f"{int(total):,}"
    outlook = _outlook(fields, now)
    return f"[{bar}] {pct:3d}%  {int(rows):,}/{total_text} rows  {fields.get('status')}" + \
        (f"  {outlook}" if outlook else "")


def _outlook(fields: dict[str, str], now: datetime | None = None) -> str:
    """``3rd in queue`` for a queued job with a place, ``ETA 12 s`` for a running one with an estimate (counting
    down from ``estimatedCompletionAt``), else empty."""
    from eclipse_exports.exports.summary import eta_text
    from eclipse_exports.observability.positions import ordinal

    state = fields.get("status")
    if state == JobStatus.QUEUED and (fields.get("queuePosition") or "").isdigit():
        return f"{ordinal(int(fields['queuePosition']))} in queue"
    if state != JobStatus.RUNNING:
        return ""
    try:
        at = datetime.fromisoformat(fields["estimatedCompletionAt"].replace("Z", "+00:00"))
        return eta_text((at - (now or datetime.now(UTC))).total_seconds())
    except (KeyError, ValueError):
        pass
    return eta_text(float(fields["etaSeconds"])) if (fields.get("etaSeconds") or "").isdigit() else ""


def _age(moment: str | None, now: datetime | None = None) -> str:
    if not moment:
        return "-"
    try:
        then = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    except ValueError:
        return moment
    seconds = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def describe_job(fields: dict[str, str], dagster_url: str | None = None) -> list[str]:
    """A job's status hash as readable lines (what ``status`` prints by default)."""
    from eclipse_exports.exports import summary as export_summary

    job_id, state = fields.get("id", "?"), fields.get("status", "unknown")
    lines = [f"job        {job_id}", f"request    {_request_line(fields)}"]
    if fields.get("request"):
        try:
            lines.append(f"scope      {export_summary.describe_scope(ExportRequest.from_payload(fields['request']))}")
        except InvalidRequest:
            pass
    detail = ""
    if state in (JobStatus.RUNNING, JobStatus.COMPLETED) and fields.get("rowCount"):
        detail = f"  {export_summary.progress_text(int(fields.get('rowsWritten') or 0), int(fields['rowCount']))}"
    if state == JobStatus.COMPLETED and fields.get("byteSize"):
        detail = f"  {int(fields['rowCount']):,} rows, {export_summary.human_size(int(fields['byteSize']))}"
    lines.append(f"status     {state}{detail}")
    if outlook := _outlook(fields):
        lines.append(f"{'queue' if state == JobStatus.QUEUED else 'eta':<10} {outlook}" + (
            f" (around {fields['estimatedCompletionAt']})" if state == JobStatus.RUNNING
            and fields.get("estimatedCompletionAt") else ""))
    if fields.get("errorCode") or fields.get("error"):
        lines.append(f"error      {fields.get('errorCode', '?')}: {fields.get('error', '')}")
    for name, label in (("createdAt", "created"), ("startedAt", "started"), ("completedAt", "finished")):
        if fields.get(name):
            lines.append(f"{label:<10} {fields[name]} ({_age(fields[name])})")
    if fields.get("filePath"):
        lines.append(f"file       {fields['filePath']}")
    if state == JobStatus.COMPLETED:
        lines.append(f"expires    {fields.get('expiresAt', '?')}")
        lines.append(f"download   eclipse-exports url {job_id}   (a fresh link)")
    if fields.get("retryOf"):
        lines.append(f"retry of   {fields['retryOf']}")
    if fields.get("runId"):
        link = f"   {dagster_url.rstrip('/')}/runs/{fields['runId']}" if dagster_url else ""
        lines.append(f"dagster    run {fields['runId']}{link}")
    if state in RETRYABLE:
        lines.append(f"next       eclipse-exports retry {job_id}")
    return lines


def _request_line(fields: dict[str, str]) -> str:
    """``alerts as csv from ws_acme, by usr_acme_analyst``; a refused request's parts that could not be read
    are said so (the dead-letter entry keeps the whole entry)."""
    parts = {name: fields.get(name) for name in ("resourceType", "format", "workspaceId", "userId")}
    if not any(parts.values()):
        return "not readable (see `eclipse-exports dead-letters` for the entry as sent)"
    said = {name: value or "(not readable)" for name, value in parts.items()}
    return f"{said['resourceType']} as {said['format']} from {said['workspaceId']}, by {said['userId']}"


@click.command("status")
@click.argument("job_id")
@click.option("--watch", is_flag=True, help="Wait for the job (even before it is picked up) and show live progress.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw status hash as JSON.")
@click.option("--timeout", type=common.SECONDS, default=3600, show_default=True,
              help="Seconds to watch before giving up.")
def status_cmd(job_id: str, watch: bool, as_json: bool, timeout: float) -> None:
    """Show a job's status; exit 1 if it failed, was rejected or expired.

    \b
    Examples:
      eclipse-exports status 3f2a9c1e-…            # readable summary
      eclipse-exports status 3f2a9c1e-… --watch    # progress bar on stderr until the job ends
      eclipse-exports status 3f2a9c1e-… --json     # the raw hash eclipse:exports:job:{id}
    """
    from eclipse_exports.queue.status import TERMINAL_STATUSES

    settings = common.settings()
    with common.service_errors(settings):
        store = common.store(settings)
        fields = store.get(job_id)
        deadline = time.monotonic() + timeout
        while watch and fields.get("status") not in TERMINAL_STATUSES and time.monotonic() < deadline:
            line = _progress_line(fields) if fields else f"waiting for {job_id} to be picked up…"
            click.echo("\r" + line.ljust(WATCH_LINE_WIDTH), nl=False, err=True)
            time.sleep(0.5)
            fields = store.get(job_id)
        if watch and fields:
            click.echo("\r" + _progress_line(fields).ljust(WATCH_LINE_WIDTH), err=True)
    if not fields:
        common.unknown_job(job_id, store)
    if as_json:
        click.echo(json.dumps(fields, indent=2, sort_keys=True))
    else:
        try:
            click.echo("\n".join(describe_job(fields, os.environ.get("ECLIPSE_DAGSTER_URL"))))
        except (ValueError, KeyError) as exc:
            common.fail(f"job '{job_id}' has a malformed status hash ({type(exc).__name__}: {exc}); "
                        f"`eclipse-exports status {job_id} --json` shows it as stored")
    if fields.get("status") in (JobStatus.FAILED, JobStatus.REJECTED, JobStatus.EXPIRED):
        sys.exit(common.JOB_FAILED_EXIT)


@click.command("url")
@click.argument("job_id")
def url_cmd(job_id: str) -> None:
    """Print a fresh presigned download URL for a completed job's live file.

    \b
    Example:
      curl -o export.csv "$(eclipse-exports url 3f2a9c1e-…)"
    """
    settings = common.settings()
    with common.service_errors(settings):
        fields = common.job(common.store(settings), job_id)
    if fields.get("status") == JobStatus.EXPIRED:
        common.fail(f"the file of job '{job_id}' has expired (retention {settings.retention_hours} h); "
                    f"`eclipse-exports retry {job_id}` exports it again")
    if fields.get("status") != JobStatus.COMPLETED or not fields.get("filePath"):
        common.fail(f"job '{job_id}' has no file (status: {fields.get('status', 'unknown')})")
    workspace_id = common.hash_field(fields, job_id, "workspaceId")
    expires = common.hash_time(fields, job_id, "expiresAt")
    left = int((expires - datetime.now(UTC)).total_seconds())
    if left <= 0:
        common.fail(f"the file of job '{job_id}' has expired (at {fields['expiresAt']})")
    with common.service_errors(settings):
        storage = common.storage(settings)
        common.checked_key(storage, fields["filePath"], workspace_id, job_id, "url")
        if not storage.exists(fields["filePath"]):
            common.fail(f"the file of job '{job_id}' is gone from S3 (expired or removed)")
        url = storage.presign(fields["filePath"], min(settings.download_url_ttl_seconds, left),
                              workspace_id=workspace_id)
        common.audit_link(settings, workspace_id, job_id, "url", fields["filePath"])
    click.echo(url)


@click.command("jobs")
@click.option("--workspace", required=True, help="Workspace id, e.g. ws_acme.")
@click.option("--status", "statuses", multiple=True, type=click.Choice([s.value for s in JobStatus]),
              help="Only jobs in this status; repeat for several.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the status hashes as JSON lines.")
def jobs_cmd(workspace: str, statuses: tuple[str, ...], limit: int, as_json: bool) -> None:
    """List a workspace's recent jobs, newest first.

    \b
    Examples:
      eclipse-exports jobs --workspace ws_acme
      eclipse-exports jobs --workspace ws_acme --status failed --status expired --limit 5
    """
    settings = common.settings()
    with common.service_errors(settings):
        jobs = common.store(settings).recent_jobs(workspace, statuses, limit)
    if as_json:
        for fields in jobs:
            click.echo(json.dumps(fields, sort_keys=True))
        return
    if not jobs:
        click.echo(f"no jobs for workspace '{workspace}'" + (f" with status {', '.join(statuses)}" if statuses else ""),
                   err=True)
        return
    rows = [("JOB", "RESOURCE", "FORMAT", "STATUS", "ROWS", "CREATED")]
    for fields in jobs:
        state = fields.get("status", "?") + (f" ({fields['errorCode']})" if fields.get("errorCode") else "")
        count = fields.get("rowCount")
        rows.append((fields.get("id", "?"), fields.get("resourceType", "?"), fields.get("format", "?"), state,
                     f"{int(count):,}" if (count or "").isdigit() else (count or "-"), _age(fields.get("createdAt"))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@click.command("retry")
@click.argument("job_id")
def retry_cmd(job_id: str) -> None:
    """Send a failed or expired job's request again under a new id (its status records retryOf); print the id.

    \b
    Example:
      NEW=$(eclipse-exports retry 3f2a9c1e-…) && eclipse-exports status "$NEW" --watch
    """
    settings = common.settings()
    with common.service_errors(settings):
        fields = common.job(common.store(settings), job_id)
    state = fields.get("status")
    if state == JobStatus.COMPLETED:
        common.fail(f"job '{job_id}' completed; nothing to retry (`eclipse-exports url {job_id}` gives a fresh link)")
    if state == JobStatus.REJECTED:
        common.fail(f"job '{job_id}' was rejected ({fields.get('errorCode')}: {fields.get('error')}); the same request "
                    "would be refused again, so send a corrected one")
    if state not in RETRYABLE:
        common.fail(f"job '{job_id}' is {state}, not finished; only failed or expired jobs are retried")
    if not fields.get("request"):
        common.fail(f"job '{job_id}' has no stored request to send again; send it anew with `eclipse-exports request`")
    try:
        payload = json.loads(fields["request"])
        if not isinstance(payload, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        common.fail(f"job '{job_id}' has a malformed status hash: its stored request is not readable ({exc})")
    if fields.get("userId") == "operator":
        common.fail(f"job '{job_id}' was an operator materialization from the Dagster UI; materialize the partition "
                    "again there")
    payload.update(id=str(uuid.uuid4()), createdAt=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    try:
        request = ExportRequest.from_payload(json.dumps(payload))
    except InvalidRequest as exc:
        common.fail(f"job '{job_id}' has a malformed status hash: its stored request is invalid ({exc})")
    new_id = _enqueue(request, {"retryOf": job_id})
    with common.service_errors(settings):
        from eclipse_exports.audit.trail import RETRIED, AuditTrail, system_actor

        AuditTrail(common.store(settings).client).append(request.workspace_id, RETRIED, job_id=job_id,
                                                         actor=system_actor("cli"), details={"newJobId": new_id})
    click.echo(new_id)


@click.command("dead-letters")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print each entry with all its original fields as JSON lines.")
def dead_letters_cmd(limit: int, as_json: bool) -> None:
    """List the newest refused stream entries (the dead-letter stream), newest first, with why.

    \b
    Examples:
      eclipse-exports dead-letters
      eclipse-exports dead-letters --limit 100 --json | jq .original.payload
    """
    from eclipse_exports.queue.dead_letters import recent_dead_letters

    settings = common.settings()
    with common.service_errors(settings):
        letters = recent_dead_letters(common.store(settings).client, limit)
    if as_json:
        for letter in letters:
            click.echo(json.dumps(asdict(letter), sort_keys=True))
        return
    if not letters:
        click.echo("no dead letters: every request on the stream was valid and new", err=True)
        return
    for letter in letters:
        click.echo(f"{letter.entry_id}  from entry {letter.source_entry_id}  job {letter.job_id or '-'}  "
                   f"{letter.error_code}: {letter.reason[:200]}")
        click.echo(f"    fields: {', '.join(sorted(letter.original)) or '(none)'}")

