"""How long things live: the retention policy every clean-up pass and purge judges by."""

from dataclasses import dataclass
from datetime import timedelta

from eclipse_exports.config import Settings


@dataclass(frozen=True)
class RetentionPolicy:
    """How long things live. Built from the environment by :meth:`from_settings`."""

    export_retention: timedelta = timedelta(hours=72)
    report_retention: timedelta = timedelta(days=90)
    stale_upload_age: timedelta = timedelta(hours=1)
    dead_letter_retention: timedelta = timedelta(days=30)

    @classmethod
    def from_settings(cls, settings: Settings) -> "RetentionPolicy":
        """``ECLIPSE_RETENTION_HOURS`` and ``ECLIPSE_REPORT_RETENTION_DAYS``; the other two are fixed."""
        return cls(export_retention=timedelta(hours=settings.retention_hours),
                   report_retention=timedelta(days=settings.report_retention_days))

