"""Dagster asset checks: the stored-file checks every file-producing asset carries."""

from eclipse_exports.checks.file_checks import (
    FILE_CHECK_NAMES,
    expected_file_from_metadata,
    file_check_evaluations,
    file_check_results,
    file_check_specs,
    file_metadata,
)

__all__ = ["FILE_CHECK_NAMES", "expected_file_from_metadata", "file_check_evaluations", "file_check_results",
           "file_check_specs", "file_metadata"]
