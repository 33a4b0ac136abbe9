"""Who may export what (docs/interface.md section 2), checked against the source database.

The checks run in the interface's order: the workspace exists, it is ``active``, and
the user is a member whose role allows the resource. Used at pick-up by the
sensor and again when the run starts, since membership may change while a
run is queued.
"""

from dataclasses import dataclass

from sqlalchemy import Connection, select

from eclipse_exports.models import AUDIT_RESOURCES, ErrorCode, ResourceType
from eclipse_exports.source.schema import workspace_members, workspaces

# audit_logs and export_audit (who did what, who exported what) are for owners and admins only.
ROLE_PERMISSIONS: dict[str, frozenset[ResourceType]] = {
    "owner": frozenset(ResourceType),
    "admin": frozenset(ResourceType),
    "analyst": frozenset(ResourceType) - AUDIT_RESOURCES,
    "viewer": frozenset({ResourceType.ALERTS, ResourceType.REPORT}),
}


@dataclass(frozen=True)
class AccessDenied:
    """A refusal: the interface's error code and a sentence for the user."""

    code: ErrorCode
    message: str


def check_workspace(conn: Connection, workspace_id: str) -> AccessDenied | None:
    """The first two checks alone: ``None`` when the workspace exists and is ``active``, else why not.

    What an operator's materialization (no requesting user) must still pass:
    an archived or deleted workspace exports nothing, whoever asks.
    """
    status = workspace_status(conn, workspace_id)
    if status is None:
        return AccessDenied(ErrorCode.UNKNOWN_WORKSPACE, f"workspace '{workspace_id}' does not exist")
    if status != "active":
        return AccessDenied(
            ErrorCode.WORKSPACE_INACTIVE, f"workspace '{workspace_id}' is {status}; only active workspaces export"
        )
    return None


def check_access(conn: Connection, workspace_id: str, user_id: str, resource: ResourceType) -> AccessDenied | None:
    """Return ``None`` when ``user_id`` may export ``resource`` from ``workspace_id``, else why not.

    Reads ``workspaces`` and ``workspace_members``; both ids are bound parameters.
    """
    denied = check_workspace(conn, workspace_id)
    if denied is not None:
        return denied
    role = conn.execute(
        select(workspace_members.c.role).where(
            workspace_members.c.workspace_id == workspace_id, workspace_members.c.user_id == user_id
        )
    ).scalar_one_or_none()
    if role is None:
        return AccessDenied(ErrorCode.FORBIDDEN, f"user '{user_id}' is not a member of workspace '{workspace_id}'")
    if ResourceType(resource) not in ROLE_PERMISSIONS.get(role, frozenset()):
        return AccessDenied(
            ErrorCode.FORBIDDEN, f"role '{role}' may not export {ResourceType(resource).value} from '{workspace_id}'"
        )
    return None


def workspace_status(conn: Connection, workspace_id: str) -> str | None:
    """The workspace's ``status`` (``active``, ``archived``, ``deleted``), or ``None`` when it does not exist."""
    return conn.execute(select(workspaces.c.status).where(workspaces.c.id == workspace_id)).scalar_one_or_none()


def active_workspace_ids(conn: Connection) -> list[str]:
    """Ids of all ``active`` workspaces, sorted; the partitions operators can backfill."""
    query = select(workspaces.c.id).where(workspaces.c.status == "active").order_by(workspaces.c.id)
    return list(conn.execute(query).scalars())


def deleted_workspace_ids(conn: Connection) -> list[str]:
    """Ids of all ``deleted`` workspaces, sorted; their files are purged."""
    query = select(workspaces.c.id).where(workspaces.c.status == "deleted").order_by(workspaces.c.id)
    return list(conn.execute(query).scalars())
