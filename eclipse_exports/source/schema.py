"""The Eclipse application's tables (docs/interface.md section 1) as SQLAlchemy Core metadata.

The project only reads these tables; ``eclipse-exports demo-data`` is the one
writer. Timestamps are stored in UTC. Indexes cover the export scans (one
workspace, ordered by timestamp then id) and the executive report's grouped
counts (``ix_*_report``: one workspace's rows by timestamp, with every column
a report counts by, so its 12-week and whole-backlog counts read the index
alone, never the rows). The report is right without them, only slower
(docs/interface.md section 1).
"""

from sqlalchemy import Column, DateTime, ForeignKey, Index, MetaData, Table, Text

metadata = MetaData()

workspaces = Table(
    "workspaces",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Text, primary_key=True),
    Column("email", Text, nullable=False),
    Column("name", Text, nullable=False),
)

workspace_members = Table(
    "workspace_members",
    metadata,
    Column("workspace_id", Text, ForeignKey("workspaces.id"), primary_key=True),
    Column("user_id", Text, ForeignKey("users.id"), primary_key=True),
    Column("role", Text, nullable=False),
)

brands = Table(
    "brands",
    metadata,
    Column("id", Text, primary_key=True),
    Column("workspace_id", Text, ForeignKey("workspaces.id"), nullable=False, index=True),
    Column("name", Text, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Text, primary_key=True),
    Column("workspace_id", Text, ForeignKey("workspaces.id"), nullable=False),
    Column("brand_id", Text, ForeignKey("brands.id"), nullable=False),
    Column("title", Text),
    Column("url", Text),
    Column("severity", Text),
    Column("status", Text),
    Column("detected_at", DateTime(timezone=True)),
    Column("monitor_source", Text),
    Index("ix_alerts_workspace_detected", "workspace_id", "detected_at", "id"),
    Index("ix_alerts_report", "workspace_id", "detected_at", "severity", "status", "brand_id"),
)

infringements = Table(
    "infringements",
    metadata,
    Column("id", Text, primary_key=True),
    Column("workspace_id", Text, ForeignKey("workspaces.id"), nullable=False),
    Column("brand_id", Text, ForeignKey("brands.id"), nullable=False),
    Column("alert_id", Text, ForeignKey("alerts.id"), nullable=True),
    Column("title", Text),
    Column("type", Text),
    Column("url", Text),
    Column("domain", Text),
    Column("severity", Text),
    Column("status", Text),
    Column("detected_at", DateTime(timezone=True)),
    Index("ix_infringements_workspace_detected", "workspace_id", "detected_at", "id"),
    Index("ix_infringements_report", "workspace_id", "detected_at", "status", "type", "brand_id"),
)

actions = Table(
    "actions",
    metadata,
    Column("id", Text, primary_key=True),
    Column("workspace_id", Text, ForeignKey("workspaces.id"), nullable=False),
    Column("infringement_id", Text, ForeignKey("infringements.id"), nullable=False),
    Column("action_type", Text),
    Column("status", Text),
    Column("priority", Text),
    Column("assigned_to", Text, ForeignKey("users.id"), nullable=True),
    Column("created_at", DateTime(timezone=True)),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Column("result", Text, nullable=True),
    Index("ix_actions_workspace_created", "workspace_id", "created_at", "id"),
    Index("ix_actions_workspace_infringement", "workspace_id", "infringement_id", "created_at"),
    Index("ix_actions_report", "workspace_id", "completed_at", "status", "action_type", "created_at", "result"),
)

audit_logs = Table(
    "audit_logs",
    metadata,
    Column("id", Text, primary_key=True),
    Column("workspace_id", Text, ForeignKey("workspaces.id"), nullable=False),
    Column("actor_id", Text, ForeignKey("users.id"), nullable=True),
    Column("action", Text, nullable=False),
    Column("target_type", Text, nullable=False),
    Column("target_id", Text, nullable=True),
    Column("ip_address", Text, nullable=True),
    Column("user_agent", Text, nullable=True),
    Column("details", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Index("ix_audit_logs_workspace_occurred", "workspace_id", "occurred_at", "id"),
)
