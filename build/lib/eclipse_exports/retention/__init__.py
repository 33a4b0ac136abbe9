"""Retention: the clean-up pass, its batch deleter and summary, workspace purge, a failed job's leftovers,
the quota counter."""
