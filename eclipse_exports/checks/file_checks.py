"""The stored-file asset checks, for any asset that writes one file per partition to S3.

Two checks, both answered by one streamed read of the object
(:func:`eclipse_exports.exports.verification.verify_export_file`):

- ``file_intact``: the object exists, is the size the upload wrote, has the
  SHA-256 computed while uploading and the content type it was uploaded with, and is stored with the
  configured server-side encryption (``ECLIPSE_S3_SSE``);
- ``rows_complete``: it parses in its format with the export's columns and
  holds every row the export's snapshot counted.

How an asset uses them (``assets/exports.py`` does exactly this)::

    @multi_asset(specs=[AssetSpec(key, partitions_def=parts, skippable=True)],
                 check_specs=file_check_specs(key, parts), can_subset=True)
    def my_asset(context):
        ...  # write the file, then verification = verify_export_file(storage, expected)
        context.add_asset_metadata(file_metadata(verification.expected))
        yield MaterializeResult(asset_key=key, check_results=file_check_results(
            key, verification, context.selected_asset_check_keys))

An asset that records each partition itself (a ranged run, as
``executive_report``'s backfills) yields :func:`file_check_evaluations`
instead, tied to the partition and its materialization.

The checks are declared on the asset (``check_specs``), so they run in the
same step as the write, in every run that materializes the asset: runs the
request sensor launches, UI materializations and backfills. Run alone (the
check's "Execute" button in the UI), the asset re-verifies the partition's
latest materialization from the metadata :func:`file_metadata` recorded.
"""

import warnings
from collections.abc import Collection, Mapping
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    PartitionsDefinition,
    PreviewWarning,
)

from eclipse_exports.exports.verification import ExpectedFile, FileVerification
from eclipse_exports.models import ExportFormat

FILE_INTACT, ROWS_COMPLETE = "file_intact", "rows_complete"
FILE_CHECK_NAMES = (FILE_INTACT, ROWS_COMPLETE)
_DESCRIPTIONS = {
    FILE_INTACT: "The object in S3 exists, is the size the upload wrote, has the SHA-256 computed while "
                 "uploading and the content type it was uploaded with, and is stored with the configured "
                 "server-side encryption (ECLIPSE_S3_SSE).",
    ROWS_COMPLETE: "The file parses in its format with the export's columns and holds every row the export's "
                   "snapshot counted (a report: the rows it lists).",
}


def file_check_specs(asset_key: AssetKey | str, partitions_def: PartitionsDefinition | None = None,
                     ) -> list[AssetCheckSpec]:
    """The two check specs for ``asset_key``, partitioned like the asset so each partition has its own result."""
    with warnings.catch_warnings():
        # Partitioned checks are a preview in Dagster 1.13; without them a check's result shows against
        # whichever partition was materialized last, not the one it verified.
        warnings.simplefilter("ignore", PreviewWarning)
        return [AssetCheckSpec(name, asset=asset_key, description=_DESCRIPTIONS[name], partitions_def=partitions_def)
                for name in FILE_CHECK_NAMES]


def file_metadata(expected: ExpectedFile) -> dict[str, Any]:
    """Materialization metadata from which :func:`expected_file_from_metadata` rebuilds ``expected`` later."""
    return {
        "s3_key": expected.key,
        "dagster/row_count": MetadataValue.int(expected.row_count),
        "byte_size": MetadataValue.int(expected.byte_size),
        "sha256": expected.sha256,
        "content_type": expected.content_type or "",
        "columns": ", ".join(expected.columns),
    }


def expected_file_from_metadata(metadata: Mapping[str, Any], fmt: str) -> ExpectedFile:
    """Rebuild what a materialization recorded with :func:`file_metadata`. Raises ``KeyError`` when it did not."""
    def value(name: str) -> Any:
        entry = metadata[name]
        return entry.value if hasattr(entry, "value") else entry

    key = value("s3_key")
    return ExpectedFile(key=key, format=ExportFormat(fmt), compressed=key.endswith(".gz"),
                        byte_size=int(value("byte_size")), sha256=value("sha256"),
                        row_count=int(value("dagster/row_count")),
                        columns=tuple(c for c in value("columns").split(", ") if c),
                        content_type=value("content_type") or None)


def file_check_results(asset_key: AssetKey | str, verification: FileVerification,
                       selected: Collection[AssetCheckKey] | None = None) -> list[AssetCheckResult]:
    """One result per check (only those in ``selected`` when given), each failing with its cause."""
    asset_key = AssetKey.from_coercible(asset_key)
    expected = verification.expected
    results = {
        FILE_INTACT: AssetCheckResult(
            asset_key=asset_key, check_name=FILE_INTACT, passed=verification.intact,
            description="; ".join(verification.integrity_problems) or "stored object is byte for byte the upload",
            metadata={"s3_key": expected.key, "stored_bytes": verification.stored_bytes or 0,
                      "uploaded_bytes": expected.byte_size, "stored_sha256": verification.stored_sha256 or "",
                      "uploaded_sha256": expected.sha256}),
        ROWS_COMPLETE: AssetCheckResult(
            asset_key=asset_key, check_name=ROWS_COMPLETE, passed=verification.readable,
            description="; ".join(verification.content_problems)
            or f"parses as {expected.label} with all {verification.rows_read:,} rows",
            metadata={"format": expected.label, "snapshot_rows": expected.row_count,
                      **({"rows_read": verification.rows_read} if verification.rows_read is not None else {})}),
    }
    return [result for name, result in results.items()
            if selected is None or AssetCheckKey(asset_key, name) in selected]


def file_check_evaluations(asset_key: AssetKey | str, verification: FileVerification, partition: str,
                           target: Any = None) -> list[AssetCheckEvaluation]:
    """The same two results as evaluations of one ``partition``, for a run that covers several.

    ``target`` is Dagster's ``AssetCheckEvaluationTargetMaterializationData`` of the partition's
    materialization (the UI shows a partition's result only while it targets the latest one).
    """
    return [AssetCheckEvaluation(asset_key=result.asset_key, check_name=result.check_name, passed=result.passed,
                                 partition=partition, target_materialization_data=target, severity=result.severity,
                                 description=result.description, metadata=result.metadata)
            for result in file_check_results(asset_key, verification)]
