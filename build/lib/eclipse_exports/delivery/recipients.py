"""Who gets an email: the requesting member's own address, or a workspace's owners and admins, from the
source database (never an address from a request)."""


from sqlalchemy import Connection, select

from eclipse_exports.source.schema import users, workspace_members

REPORT_ROLES = ("owner", "admin")


def recipient_for(conn: Connection, workspace_id: str, user_id: str) -> str | None:
    """The email address of ``user_id`` if the user is a member of ``workspace_id``, else ``None``.

    Reads ``users.email`` joined to ``workspace_members`` in the source
    database; both ids are bound parameters. Returns ``None`` for an unknown
    user, a user who is not (or no longer) a member, and an empty address.
    The workspace's status and the member's role are not checked here (that
    is :func:`eclipse_exports.source.access.check_access`'s job).
    """
    query = (
        select(users.c.email)
        .select_from(users.join(workspace_members, workspace_members.c.user_id == users.c.id))
        .where(workspace_members.c.workspace_id == workspace_id, users.c.id == user_id)
    )
    email = conn.execute(query).scalar_one_or_none()
    if email is None or not email.strip():
        return None
    return email.strip()


def report_recipients(conn: Connection, workspace_id: str) -> list[str]:
    """Addresses of the workspace's owners and admins (``workspace_members`` joined to ``users``), sorted, unique.

    Members without an address are left out; the workspace id is a bound parameter.
    """
    query = (
        select(users.c.email)
        .select_from(users.join(workspace_members, workspace_members.c.user_id == users.c.id))
        .where(workspace_members.c.workspace_id == workspace_id, workspace_members.c.role.in_(REPORT_ROLES))
    )
    return sorted({email.strip() for email in conn.execute(query).scalars() if email and email.strip()})
