"""What an operator reads about one export, in words: its scope, sizes, speed and first rows.

Plain values for the Dagster layer to show (``assets/exports.py`` turns them
into materialization metadata and run tags) and for the command line; nothing
here talks to a service.

- **Scope**: ``full`` when the request exports the whole partition (every row
  of the workspace's resource; for a report, the default last 7 days),
  ``filtered`` when filters narrow it. Options (format, gzip, Excel) never
  change the scope.
- **Preview**: the first rows as a Markdown table, cells cut to a readable width.
- **Links**: an AWS console link only when the file is on AWS (it needs a
  console login, so it gives nothing away); never a presigned URL, which would
  hand the tenant's file to anyone who can read the Dagster UI.
"""

import json
import math
from datetime import datetime
from typing import Any
from urllib.parse import quote

from eclipse_exports.models import ExportRequest, iso_utc

FULL, FILTERED = "full", "filtered"
PREVIEW_CELL_CHARS = 40
_UNITS = ("bytes", "KiB", "MiB", "GiB", "TiB")


def scope(request: ExportRequest) -> str:
    """``full`` or ``filtered`` (see the module docstring)."""
    return FILTERED if filters(request) else FULL


def filters(request: ExportRequest) -> dict[str, Any]:
    """The request's filters under their the interface's names, unset ones left out (``{}`` for none)."""
    return request.filters.model_dump(mode="json", by_alias=True, exclude_none=True)


def options(request: ExportRequest) -> dict[str, Any]:
    """The request's file options under their the interface's names, with defaults filled in."""
    return request.options.model_dump(mode="json", by_alias=True)


def describe_scope(request: ExportRequest) -> str:
    """One line: ``full`` or ``filtered: {"severity": ["high"]}``."""
    found = filters(request)
    return f"{FILTERED}: {json.dumps(found, separators=(', ', ': '))}" if found else FULL


def human_size(byte_size: int) -> str:
    """``1,234,567`` → ``1.2 MiB`` (binary units; plain bytes below 1 KiB)."""
    size, unit = float(byte_size), 0
    while size >= 1024 and unit < len(_UNITS) - 1:
        size, unit = size / 1024, unit + 1
    return f"{byte_size:,} bytes" if unit == 0 else f"{size:,.1f} {_UNITS[unit]}"


def human_duration(seconds: float) -> str:
    """``0.42`` → ``0.4 s``; ``125`` → ``2 min 5 s``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


def progress_text(rows_written: int, total_rows: int, eta_seconds: float | None = None) -> str:
    """``36% · 180,000/500,000 rows · ETA 12 s`` (the run tag operators see in the Runs list; no ETA part
    without an estimate)."""
    percent = 100 if total_rows <= 0 else min(100, rows_written * 100 // total_rows)
    text = f"{percent}% · {rows_written:,}/{total_rows:,} rows"
    return text if eta_seconds is None else f"{text} · {eta_text(eta_seconds)}"


def eta_text(seconds: float) -> str:
    """``ETA 12 s``, ``ETA 1 min``, ``ETA 2 min 5 s``, ``ETA 1 h 4 min`` (whole seconds, rounded up)."""
    left = max(0, math.ceil(seconds))
    if left < 60:
        return f"ETA {left} s"
    if left < 3600:
        return f"ETA {left // 60} min" + (f" {left % 60} s" if left % 60 else "")
    return f"ETA {left // 3600} h {left % 3600 // 60} min"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = iso_utc(value) if isinstance(value, datetime) else str(value)
    text = " ".join(text.split())
    if len(text) > PREVIEW_CELL_CHARS:
        text = text[: PREVIEW_CELL_CHARS - 1] + "…"
    # A pipe would end the cell; a backslash or backtick would start Markdown escapes or code.
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")


def markdown_preview(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """The rows as a Markdown table under ``columns``; every cell one line of at most 40 characters."""
    if not rows:
        return "*No rows.*"
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def aws_console_url(bucket: str, key: str, region: str) -> str:
    """The AWS console page of an object (opens only for someone signed in to the account)."""
    return (f"https://{region}.console.aws.amazon.com/s3/object/{quote(bucket)}"
            f"?region={quote(region)}&prefix={quote(key, safe='')}")
