"""Demo rows of the Eclipse app's ``audit_logs`` table: who did what in each workspace, as the app records it.

Realistic and deterministic (one seeded random stream of its own, so the other demo tables do not change):
dotted verbs on the workspace's own alerts, infringements, actions, brands and members, by its members (or the
system, ``actor_id`` null) from documentation-range IP addresses and common user agents, with a JSON object
of details, over the same 90 days as the rest of the demo data.
"""

import json
import random
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

HISTORY_SECONDS = 90 * 86_400
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "eclipse-api-client/2.4.1 (python-requests/2.32)",
    "curl/8.5.0",
)
ALERT_STATUSES = ("acknowledged", "resolved", "dismissed")
INFRINGEMENT_STATUSES = ("open", "in_review", "takedown_requested", "resolved", "rejected")
ROLES = ("admin", "analyst", "viewer")
EXPORT_RESOURCES = ("alerts", "infringements", "actions", "audit_logs")
# (action, target type, weight)
VERBS = (
    ("alert.acknowledged", "alert", 30), ("alert.resolved", "alert", 12), ("alert.dismissed", "alert", 6),
    ("infringement.status_changed", "infringement", 20), ("infringement.assigned", "infringement", 6),
    ("action.created", "action", 10), ("action.completed", "action", 5),
    ("brand.created", "brand", 1), ("brand.updated", "brand", 1),
    ("member.added", "user", 1), ("member.role_changed", "user", 1), ("member.removed", "user", 1),
    ("export.requested", "export", 4), ("auth.login", "user", 8), ("settings.updated", "workspace", 1),
    ("alert.auto_resolved", "alert", 4),
)
SYSTEM_VERBS = frozenset({"alert.auto_resolved"})


def _ip(rng: random.Random) -> str:
    return rng.choice(("192.0.2", "198.51.100", "203.0.113")) + f".{rng.randrange(1, 255)}"


def _details(rng: random.Random, action: str, workspace_id: str, brands: Sequence[str]) -> dict:
    short = workspace_id.removeprefix("ws_")
    if action.startswith("alert."):
        return {"previous_status": "new", "status": action.split(".")[1].replace("auto_", ""),
                **({"rule": "stale_after_30_days"} if action == "alert.auto_resolved" else {})}
    if action == "infringement.status_changed":
        before, after = rng.sample(INFRINGEMENT_STATUSES, 2)
        return {"from": before, "to": after, **({"note": "Evidence attached"} if rng.random() < 0.2 else {})}
    if action == "infringement.assigned":
        return {"assignee": f"usr_{short}_analyst"}
    if action.startswith("action."):
        return {"action_type": rng.choice(("takedown_request", "cease_and_desist", "platform_report"))}
    if action.startswith("brand."):
        return {"name": rng.choice(list(brands) or ["Brand"])}
    if action == "member.role_changed":
        before, after = rng.sample(ROLES, 2)
        return {"from": before, "to": after}
    if action.startswith("member."):
        return {"role": rng.choice(ROLES)}
    if action == "export.requested":
        return {"resourceType": rng.choice(EXPORT_RESOURCES), "format": rng.choice(("csv", "parquet", "jsonl"))}
    if action == "auth.login":
        return {"method": rng.choice(("password", "sso", "sso")), "mfa": rng.random() < 0.8}
    return {"changed": rng.sample(["timezone", "notification_email", "default_severity", "retention"], 2)}


def audit_log_rows(seed: int, as_of: datetime, workspaces: Sequence[tuple[str, Sequence[str], Sequence[str], int]],
                   ) -> Iterator[dict]:
    """Rows of ``audit_logs`` for each ``(workspace id, member user ids, brand names, count)``, ids
    ``aud_{workspace}_{n:08d}``, ``occurred_at`` within the 90 days before ``as_of``. Same seed, same rows."""
    rng = random.Random(seed)
    verbs, weights = [(a, t) for a, t, _ in VERBS], [w for *_, w in VERBS]
    for workspace_id, members, brands, count in workspaces:
        short = workspace_id.removeprefix("ws_")
        for n in range(1, count + 1):
            action, target_type = rng.choices(verbs, weights)[0]
            # Viewers only sign in and request exports; the rest is done by those who may change things.
            doers = [m for m in members if action in ("auth.login", "export.requested") or "viewer" not in m]
            system = action in SYSTEM_VERBS or not doers
            actor = None if system else rng.choice(doers)
            target = {"alert": f"alt_{short}_{rng.randrange(1, 10**6):08d}",
                      "infringement": f"inf_{short}_{rng.randrange(1, 10**5):08d}",
                      "action": f"act_{short}_{rng.randrange(1, 10**5):08d}",
                      "brand": f"brd_{short}_{rng.randrange(len(brands) or 1)}",
                      "user": rng.choice(list(members)) if members else None,
                      "export": f"{rng.getrandbits(64):016x}", "workspace": workspace_id}[target_type]
            yield {
                "id": f"aud_{short}_{n:08d}",
                "workspace_id": workspace_id,
                "actor_id": actor,
                "action": action,
                "target_type": target_type,
                "target_id": target,
                "ip_address": None if system else _ip(rng),
                "user_agent": None if system else rng.choice(USER_AGENTS),
                "details": json.dumps(_details(rng, action, workspace_id, brands), sort_keys=True),
                "occurred_at": as_of - timedelta(seconds=rng.randrange(HISTORY_SECONDS)),
            }
