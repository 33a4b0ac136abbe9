"""Queue positions: Dagster's dequeue order replayed, with the workspace limit and the global limit."""

from eclipse_exports.observability.positions import (
    QueuedRun,
    RunQueueLimits,
    TagLimit,
    ordinal,
    queue_positions,
)

PROJECT_LIMITS = RunQueueLimits(4, (TagLimit("eclipse/workspace_id", 2, per_value=True),))


def run(run_id: str, workspace: str, **tags: str) -> QueuedRun:
    return QueuedRun(run_id, {"eclipse/workspace_id": workspace, **tags})


def test_first_come_first_served_without_limits():
    queued = [run(f"r{n}", "ws_a") for n in range(5)]
    assert queue_positions(queued, [], RunQueueLimits()) == {f"r{n}": n + 1 for n in range(5)}


def test_a_workspace_at_its_limit_waits_behind_other_workspaces():
    # ws_a has its 2 runs going; 2 global slots are free: ws_b's runs start first, ws_a's follow as runs end.
    queued = [run("a1", "ws_a"), run("a2", "ws_a"), run("b1", "ws_b"), run("a3", "ws_a"), run("b2", "ws_b")]
    in_progress = [{"eclipse/workspace_id": "ws_a"}, {"eclipse/workspace_id": "ws_a"}]
    positions = queue_positions(queued, in_progress, PROJECT_LIMITS)
    assert positions == {"b1": 1, "b2": 2, "a1": 3, "a2": 4, "a3": 5}


def test_the_global_limit_holds_everyone_and_priority_goes_first():
    queued = [run("a1", "ws_a"), run("b1", "ws_b"), run("c1", "ws_c", **{"dagster/priority": "5"})]
    in_progress = [{"eclipse/workspace_id": w} for w in ("ws_x", "ws_y", "ws_z", "ws_w")]
    assert queue_positions(queued, in_progress, PROJECT_LIMITS) == {"c1": 1, "a1": 2, "b1": 3}


def test_a_burst_of_one_workspace_is_numbered_in_order_and_a_limit_of_zero_goes_last():
    queued = [run(f"a{n}", "ws_a") for n in range(50)] + [QueuedRun("blocked", {"lane": "shut"})]
    limits = RunQueueLimits(4, (*PROJECT_LIMITS.tag_limits, TagLimit("lane", 0)))
    positions = queue_positions(queued, [{"eclipse/workspace_id": "ws_a"}] * 2, limits)
    assert [positions[f"a{n}"] for n in range(50)] == list(range(1, 51))
    assert positions["blocked"] == 51


def test_limits_read_from_dagster_config_shapes():
    assert TagLimit.from_config({"key": "k", "limit": 2, "value": {"applyLimitPerUniqueValue": True}}) == \
        TagLimit("k", 2, per_value=True)
    assert TagLimit.from_config({"key": "k", "limit": 1, "value": "v"}) == TagLimit("k", 1, value="v")
    assert TagLimit.from_config({"key": "k", "limit": 3}) == TagLimit("k", 3)


def test_ordinals():
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111)] == \
        ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "101st", "111th"]
