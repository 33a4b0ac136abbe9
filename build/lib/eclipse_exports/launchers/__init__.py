"""Dagster run launchers (the Dagster layer): how a run gets a process to execute in."""
