"""The arithmetic under the report: arrivals, percentiles, rates, occupancy, grouping, and flag checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hubkit_rehearse.plan import (
    CONFIRM_ABOVE,
    Plan,
    PlanError,
    arrivals,
    load_cells,
    load_user_file,
    parse_think,
    think_times,
    user_names,
)
from hubkit_rehearse.record import RunRecord, Step, UserRecord
from hubkit_rehearse.session import classify
from hubkit_rehearse.stats import _rates, durations, failure_groups, occupancy, percentile


def test_uniform_arrivals_span_the_ramp_evenly() -> None:
    a = arrivals(5, 60, "uniform")
    assert a == [0, 15, 30, 45, 60]
    assert arrivals(3, 0, "uniform") == [0, 0, 0]


def test_bell_arrivals_crowd_the_middle_and_stay_in_the_ramp() -> None:
    a = arrivals(300, 60, "bell")
    assert a == sorted(a) and a[0] >= 0 and a[-1] <= 60
    middle = sum(1 for t in a if 20 <= t <= 40)  # +-1 sigma holds about 68%
    assert 190 <= middle <= 220
    assert arrivals(300, 60, "bell") == a  # deterministic: two runs load the hub alike


def test_percentile_interpolates_like_numpy() -> None:
    xs = [1.0, 2.0, 3.0, 4.0]
    assert percentile(xs, 50) == 2.5
    assert percentile(xs, 0) == 1.0 and percentile(xs, 100) == 4.0
    assert percentile(list(range(101)), 95) == 95
    assert percentile([], 50) is None and percentile([7.0], 99) == 7.0


def test_rates_need_a_window_for_a_peak() -> None:
    avg, peak = _rates(0.0, [1, 2, 3, 4])
    assert avg == pytest.approx(4 / 4 * 60) and peak is None  # 4 s of events: no 10 s window to speak of
    times = [0.5 * i for i in range(1, 41)]  # 2 per second for 20 s
    avg, peak = _rates(0.0, times)
    assert avg == pytest.approx(120) and peak == pytest.approx(120)


def _user(name: str, steps: list[tuple[str, float, float, bool]]) -> UserRecord:
    u = UserRecord(name=name, arrival=steps[0][1])
    for phase, t0, t1, ok in steps:
        u.steps.append(Step(phase, t0, t1, ok, None if ok else "HTTP 500", None if ok else f"{name} broke"))
    u.outcome = "ok" if all(s[3] for s in steps) else "failed"
    u.end = steps[-1][2]
    return u


def test_occupancy_counts_each_user_once_at_a_time() -> None:
    # spawn overlaps start (both begin at the request); occupancy must not count the user twice
    u = _user(
        "a", [("login", 0, 1, True), ("start", 1, 3, True), ("spawn", 1, 5, True), ("stop", 5, 6, True)]
    )
    xs, series = occupancy([u], 0.5, 6)
    total = [sum(series[p][i] for p in series) for i in range(len(xs))]
    assert max(total) == pytest.approx(1.0)
    assert sum(series["start"]) * 0.5 == pytest.approx(2)  # 1..3
    assert sum(series["spawn"]) * 0.5 == pytest.approx(2)  # 3..5, after start ended


def test_failures_grouped_with_an_example_and_durations_only_from_successes() -> None:
    users = [
        _user("a", [("login", 0, 1, True), ("start", 1, 2, False)]),
        _user("b", [("login", 0, 2, True), ("start", 2, 3, False)]),
        _user("c", [("login", 0, 3, True)]),
    ]
    groups = failure_groups(users)
    assert groups == [
        {"phase": "start", "reason": "HTTP 500", "count": 2, "example": "a broke", "users": ["a", "b"]}
    ]
    assert sorted(durations(users, "login")) == [1, 2, 3]
    assert durations(users, "start") == []


def test_classify_groups_alike_messages() -> None:
    from hubkit_rehearse.browser import HubHTTPError

    e1 = HubHTTPError("POST", "http://h/hub/api/users/u1/server", 400, '{"message": "u1 has 3 servers"}')
    e2 = HubHTTPError("POST", "http://h/hub/api/users/u22/server", 400, '{"message": "u22 has 4 servers"}')
    reason = classify(e1, "u1")[0]
    assert reason == classify(e2, "u22")[0]  # one group for both
    assert reason.startswith("HTTP 400") and "{user}" in reason and "3" not in reason
    assert "u1 has 3 servers" in classify(e1, "u1")[1]  # the example keeps the real message


def test_names_think_and_files(tmp_path: Path) -> None:
    assert user_names("s{i:03d}", 3, 9) == ["s009", "s010", "s011"]
    with pytest.raises(PlanError):
        user_names("s{j}", 2)
    with pytest.raises(PlanError):
        user_names("same{i!s:.0}", 2)  # every name identical
    assert parse_think("30") == (30, 30) and parse_think("10-20") == (10, 20)
    with pytest.raises(PlanError):
        parse_think("soon")
    ts = think_times(50, (10, 20), seed=1)
    assert all(10 <= t <= 20 for t in ts) and ts == think_times(50, (10, 20), seed=1)
    f = tmp_path / "users.txt"
    f.write_text("# name token\nalice abc\n\nbob,def\n")
    assert load_user_file(f) == [("alice", "abc"), ("bob", "def")]
    f.write_text("alice\n")
    with pytest.raises(PlanError, match="NAME TOKEN"):
        load_user_file(f)
    cells = tmp_path / "cells.json"
    cells.write_text(json.dumps([{"code": "1+1", "expect": "2"}]))
    assert load_cells(cells)[0].expect == "2"
    cells.write_text('{"code": "1"}')
    with pytest.raises(PlanError, match="JSON list"):
        load_cells(cells)


def test_plan_bounds_and_confirmation() -> None:
    Plan(hub_url="http://127.0.0.1:1", users=CONFIRM_ABOVE).validate()
    with pytest.raises(PlanError, match="--yes"):
        Plan(hub_url="http://127.0.0.1:1", users=CONFIRM_ABOVE + 1).validate()
    Plan(hub_url="http://127.0.0.1:1", users=CONFIRM_ABOVE + 1, yes=True).validate()
    for bad in (
        {"users": 0},
        {"users": 100_000, "yes": True},
        {"concurrency": 0},
        {"max_duration": 0},
        {"ramp": 10, "max_duration": 5},
        {"login": "token"},  # no admin token
        {"think": (5.0, 1.0)},
    ):
        with pytest.raises(PlanError):
            Plan(hub_url="http://127.0.0.1:1", **bad).validate()  # type: ignore[arg-type]


def test_result_file_round_trip_and_refusal(tmp_path: Path) -> None:
    run = RunRecord(hub_url="http://h/", hub_version="6.1.1", started_at="t", plan={"users": 1})
    run.users.append(_user("a", [("login", 0, 1, True)]))
    path = tmp_path / "r.json"
    run.save(path)
    back = RunRecord.load(path)
    assert back.users[0].steps[0].duration == 1 and back.hub_version == "6.1.1"
    path.write_text('{"format": 99}')
    with pytest.raises(ValueError, match="format"):
        RunRecord.load(path)
    path.write_text("not json")
    with pytest.raises(ValueError, match="cannot read"):
        RunRecord.load(path)


def test_longest_stall_needs_steps_under_way() -> None:
    from hubkit_rehearse.stats import longest_stall

    users = [
        _user("a", [("login", 0, 1, True), ("spawn", 1, 20, True), ("stop", 20, 21, True)]),
        _user("b", [("login", 0, 2, True), ("think", 2, 50, True), ("stop", 50, 51, True)]),
    ]
    st = longest_stall(users)
    # 21 -> 50 is longer, but only b's think (the tool's own wait) was under way then
    assert st == {"seconds": 18, "from": 2, "to": 20, "users_waiting": 1}
