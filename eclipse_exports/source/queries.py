"""Export queries: one builder per resource, always bound to one workspace.

This is the only place that turns a request into SQL. The workspace id and
every filter value are bound parameters; nothing from a request is ever part
of the SQL text. Each query selects the interface's columns in order, labelled
with their export names, and orders rows by the timestamp column (nulls last, the same on
every database), then id.
"""

from collections.abc import Callable

from sqlalchemy import ColumnElement, Select, and_, func, literal_column, or_, select

from eclipse_exports.models import ExportFilters, ResourceType
from eclipse_exports.source.schema import actions, alerts, audit_logs, brands, infringements, users


def _date_conditions(column: ColumnElement, filters: ExportFilters) -> list[ColumnElement[bool]]:
    conditions = []
    if filters.date_from is not None:
        conditions.append(column >= filters.date_from)
    if filters.date_to is not None:
        conditions.append(column < filters.date_to)
    return conditions


def _alerts(workspace_id: str, filters: ExportFilters) -> Select:
    conditions = [alerts.c.workspace_id == workspace_id]
    if filters.severity is not None:
        conditions.append(alerts.c.severity.in_(filters.severity))
    if filters.status is not None:
        conditions.append(alerts.c.status.in_(filters.status))
    if filters.brand is not None:
        conditions.append(brands.c.name.in_(filters.brand))
    conditions += _date_conditions(alerts.c.detected_at, filters)
    return (
        select(
            alerts.c.id,
            alerts.c.title,
            alerts.c.url,
            brands.c.name.label("brand"),
            alerts.c.severity,
            alerts.c.status,
            alerts.c.detected_at,
            alerts.c.monitor_source,
        )
        .select_from(alerts.outerjoin(brands, brands.c.id == alerts.c.brand_id))
        .where(and_(*conditions))
        .order_by(alerts.c.detected_at.asc().nulls_last(), alerts.c.id)
    )


def _infringements(workspace_id: str, filters: ExportFilters) -> Select:
    action_counts = (
        select(actions.c.infringement_id, func.count().label("n"))
        .where(actions.c.workspace_id == workspace_id)
        .group_by(actions.c.infringement_id)
        .subquery("action_counts")
    )
    conditions = [infringements.c.workspace_id == workspace_id]
    if filters.severity is not None:
        conditions.append(infringements.c.severity.in_(filters.severity))
    if filters.status is not None:
        conditions.append(infringements.c.status.in_(filters.status))
    if filters.brand is not None:
        conditions.append(brands.c.name.in_(filters.brand))
    conditions += _date_conditions(infringements.c.detected_at, filters)
    return (
        select(
            infringements.c.id,
            infringements.c.title,
            infringements.c.type,
            infringements.c.url,
            infringements.c.domain,
            brands.c.name.label("brand"),
            infringements.c.severity,
            infringements.c.status,
            infringements.c.detected_at,
            func.coalesce(action_counts.c.n, 0).label("action_count"),
        )
        .select_from(
            infringements.outerjoin(brands, brands.c.id == infringements.c.brand_id).outerjoin(
                action_counts, action_counts.c.infringement_id == infringements.c.id
            )
        )
        .where(and_(*conditions))
        .order_by(infringements.c.detected_at.asc().nulls_last(), infringements.c.id)
    )


def _actions(workspace_id: str, filters: ExportFilters) -> Select:
    conditions = [actions.c.workspace_id == workspace_id]
    if filters.status is not None:
        conditions.append(actions.c.status.in_(filters.status))
    conditions += _date_conditions(actions.c.created_at, filters)
    return (
        select(
            actions.c.id,
            actions.c.action_type,
            actions.c.status,
            actions.c.infringement_id,
            actions.c.priority,
            users.c.email.label("assigned_to"),
            actions.c.created_at,
            actions.c.completed_at,
            actions.c.result,
        )
        .select_from(actions.outerjoin(users, users.c.id == actions.c.assigned_to))
        .where(and_(*conditions))
        .order_by(actions.c.created_at.asc().nulls_last(), actions.c.id)
    )


def _action_condition(verbs: list[str]) -> ColumnElement[bool]:
    """Exact verbs, and ``prefix.*`` as "starts with ``prefix.``" (the verb pattern has no LIKE wildcards, and
    ``_`` is escaped so it matches itself)."""
    exact = [v for v in verbs if not v.endswith(".*")]
    prefixes = [v[:-1] for v in verbs if v.endswith(".*")]
    conditions: list[ColumnElement[bool]] = [audit_logs.c.action.in_(exact)] if exact else []
    conditions += [audit_logs.c.action.startswith(p, autoescape=True) for p in prefixes]
    return or_(*conditions)


def _audit_logs(workspace_id: str, filters: ExportFilters) -> Select:
    conditions = [audit_logs.c.workspace_id == workspace_id]
    if filters.action is not None:
        conditions.append(_action_condition(filters.action))
    if filters.actor is not None:
        conditions.append(audit_logs.c.actor_id.in_(filters.actor))
    conditions += _date_conditions(audit_logs.c.occurred_at, filters)
    return (
        select(
            audit_logs.c.id,
            audit_logs.c.occurred_at,
            users.c.email.label("actor_email"),
            audit_logs.c.action,
            audit_logs.c.target_type,
            audit_logs.c.target_id,
            audit_logs.c.ip_address,
            audit_logs.c.user_agent,
            audit_logs.c.details,
        )
        .select_from(audit_logs.outerjoin(users, users.c.id == audit_logs.c.actor_id))
        .where(and_(*conditions))
        .order_by(audit_logs.c.occurred_at.asc().nulls_last(), audit_logs.c.id)
    )


_BUILDERS: dict[ResourceType, Callable[[str, ExportFilters], Select]] = {
    ResourceType.ALERTS: _alerts,
    ResourceType.INFRINGEMENTS: _infringements,
    ResourceType.ACTIONS: _actions,
    ResourceType.AUDIT_LOGS: _audit_logs,
}


def export_query(resource: ResourceType, workspace_id: str, filters: ExportFilters | None = None) -> Select:
    """The ordered export SELECT for one workspace's rows of ``resource``.

    Columns are the interface's export columns in order (see ``columns.py``).
    Raises ``KeyError`` for ``report`` and ``export_audit``, which are not read from the source database.
    """
    return _BUILDERS[ResourceType(resource)](workspace_id, filters or ExportFilters())


def count_query(resource: ResourceType, workspace_id: str, filters: ExportFilters | None = None) -> Select:
    """``SELECT count(*)`` over exactly the rows :func:`export_query` returns."""
    inner = export_query(resource, workspace_id, filters).order_by(None).subquery()
    return select(func.count(literal_column("*"))).select_from(inner)
