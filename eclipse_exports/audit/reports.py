"""The export audit trail's entries for one weekly executive report: rendered, then delivered or skipped.

Built from what the ``executive_report`` asset recorded of a report (its materialization metadata), so the
asset itself needs no Redis; ``sensors/report_audit.py`` appends them.
"""

from typing import Any

from eclipse_exports.audit.trail import REPORT_DELIVERED, REPORT_RENDERED, REPORT_SKIPPED

# Delivery statuses (reports/weekly.py DeliveryStatus) that mean the email went out.
DELIVERED_STATUSES = ("sent",)


def report_audit_events(metadata: dict[str, Any], run_id: str, storage_id: int) -> list[tuple[str, str, dict, str]]:
    """``[(workspace id, event, details, event id)]`` for one materialization of a weekly report.

    ``metadata`` holds plain values (``workspace_id``, ``week``, ``s3_uri``, ``byte_size``, ``pdf_s3_uri``,
    ``delivery_status``, ``delivery``, ``mailed_to``); ``storage_id`` is the materialization's event-log id,
    which makes the event ids stable (a second pass over the same materialization adds nothing new once the
    archive drops duplicate ids). Returns ``[]`` when the metadata names no workspace.
    """
    workspace_id, week = metadata.get("workspace_id"), metadata.get("week")
    if not workspace_id or not week:
        return []
    base = {"week": week, "runId": run_id}
    rendered = {**base, "key": metadata.get("s3_uri"), "bytes": metadata.get("byte_size"),
                **({"pdfKey": metadata["pdf_s3_uri"]} if metadata.get("pdf_s3_uri") else {})}
    status = str(metadata.get("delivery_status") or "")
    outcome = REPORT_DELIVERED if status in DELIVERED_STATUSES else REPORT_SKIPPED
    sent = {**base, "status": status, "messages": metadata.get("mailed_to"), "description": metadata.get("delivery")}
    return [(workspace_id, REPORT_RENDERED, rendered, f"report:{storage_id}:{REPORT_RENDERED}"),
            (workspace_id, outcome, sent, f"report:{storage_id}:{outcome}")]
