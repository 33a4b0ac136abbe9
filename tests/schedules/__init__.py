"""Tests of eclipse_exports/schedules."""
