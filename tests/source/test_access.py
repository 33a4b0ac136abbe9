"""The interface's access matrix, checked against the source database, and a membership revoked while queued."""

import json

import pytest
from sqlalchemy import delete

from eclipse_exports.exports.run import ExportFailed, ExportLimits, run_export
from eclipse_exports.models import ErrorCode, ExportRequest, ResourceType
from eclipse_exports.queue.intake import take_requests
from eclipse_exports.queue.keys import REQUEST_STREAM
from eclipse_exports.queue.status import JobStatusStore
from eclipse_exports.source.access import check_access
from eclipse_exports.source.schema import workspace_members

ALLOWED = {
    "owner": set(ResourceType),
    "admin": set(ResourceType),
    "analyst": set(ResourceType) - {ResourceType.AUDIT_LOGS, ResourceType.EXPORT_AUDIT},
    "viewer": {ResourceType.ALERTS, ResourceType.REPORT},
}
USER_OF_ROLE = {"owner": "u_owner", "admin": "u_admin", "analyst": "u_analyst", "viewer": "u_viewer"}


@pytest.mark.parametrize("role", sorted(ALLOWED))
@pytest.mark.parametrize("resource", list(ResourceType))
def test_role_by_resource_matrix(source, role, resource):
    with source.connect() as conn:
        denied = check_access(conn, "ws_a", USER_OF_ROLE[role], resource)
    if resource in ALLOWED[role]:
        assert denied is None
    else:
        assert denied is not None and denied.code is ErrorCode.FORBIDDEN
        assert role in denied.message and resource.value in denied.message


@pytest.mark.parametrize("workspace, user, code", [
    ("ws_a", "u_none", ErrorCode.FORBIDDEN),            # a user of no workspace
    ("ws_a", "u_b", ErrorCode.FORBIDDEN),               # a member of another workspace
    ("ws_a", "nobody_at_all", ErrorCode.FORBIDDEN),     # an unknown user
    ("ws_missing", "u_owner", ErrorCode.UNKNOWN_WORKSPACE),
    ("ws_arch", "u_arch", ErrorCode.WORKSPACE_INACTIVE),  # the archived workspace's own owner
    ("ws_del", "u_del", ErrorCode.WORKSPACE_INACTIVE),    # the deleted workspace's own owner
])
@pytest.mark.parametrize("resource", [ResourceType.ALERTS, ResourceType.REPORT])
def test_refusals(source, workspace, user, code, resource):
    with source.connect() as conn:
        denied = check_access(conn, workspace, user, resource)
    assert denied is not None and denied.code is code


def test_membership_revoked_between_enqueue_and_run(sqlite_engine, redis_client, storage):
    payload = {"id": "revoked-1", "workspaceId": "ws_b", "userId": "u_b", "resourceType": "alerts", "format": "csv"}
    redis_client.xadd(REQUEST_STREAM, {"payload": json.dumps(payload)})
    store = JobStatusStore(redis_client)
    accepted = take_requests(redis_client, sqlite_engine, store, None).accepted
    assert [r.id for r in accepted] == ["revoked-1"]
    with sqlite_engine.begin() as conn:
        conn.execute(delete(workspace_members).where(workspace_members.c.user_id == "u_b"))
    try:
        with pytest.raises(ExportFailed) as info:
            run_export(ExportRequest.from_payload(json.dumps(payload)), engine=sqlite_engine, storage=storage,
                       status=store, limits=ExportLimits(), run_id="run-revoked")
        assert info.value.code is ErrorCode.FORBIDDEN
        assert list(storage.iter_objects("")) == []
    finally:
        with sqlite_engine.begin() as conn:
            conn.execute(workspace_members.insert().values(workspace_id="ws_b", user_id="u_b", role="owner"))
