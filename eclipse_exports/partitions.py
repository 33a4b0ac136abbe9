"""The ``workspaces`` dynamic partitions: one partition per Eclipse workspace id."""

from dagster import DynamicPartitionsDefinition

workspace_partitions = DynamicPartitionsDefinition(name="workspaces")
