"""Figures computed from a run's records: percentiles per phase, throughput, failures grouped by reason,
queue positions, and the timeline (users in each phase over time). Nothing here is measured; it only counts."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .record import PHASES, TIMED_PHASES

if TYPE_CHECKING:
    from .record import RunRecord, UserRecord

PERCENTILES = (50, 90, 95, 99)


def percentile(values: Sequence[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); ``None`` for no values."""
    if not values:
        return None
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    k = (len(xs) - 1) * p / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def durations(users: Iterable[UserRecord], phase: str) -> list[float]:
    """Successful durations of ``phase`` ("cell" = every cell, "session" = arrival to the end of stop)."""
    out: list[float] = []
    for u in users:
        if phase == "cell":
            out.extend(u.cells)
        elif phase == "session":
            if u.outcome == "ok" and u.end is not None:
                out.append(u.end - u.arrival)
        else:
            out.extend(s.t1 - s.t0 for s in u.steps if s.phase == phase and s.ok and s.t1 is not None)
    return out


def failures_in(users: Iterable[UserRecord], phase: str) -> int:
    return sum(1 for u in users for s in u.steps if s.phase == phase and not s.ok and s.reason != "cancelled")


def phase_table(users: Sequence[UserRecord]) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for phase in TIMED_PHASES:
        vals = durations(users, phase)
        failed = failures_in(users, phase) if phase not in ("cell", "session") else 0
        if not vals and not failed:
            continue
        row: dict[str, Any] = {"n": len(vals), "failed": failed}
        for p in PERCENTILES:
            row[f"p{p}"] = percentile(vals, p)
        row["max"] = max(vals) if vals else None
        row["mean"] = sum(vals) / len(vals) if vals else None
        table[phase] = row
    return table


def failure_groups(users: Sequence[UserRecord]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for u in users:
        step = u.failed_step()
        if step is None or step.reason == "cancelled":
            continue
        key = (step.phase, step.reason or "unknown")
        g = groups.setdefault(
            key,
            {"phase": key[0], "reason": key[1], "count": 0, "example": step.detail or key[1], "users": []},
        )
        g["count"] += 1
        if len(g["users"]) < 5:
            g["users"].append(u.name)
    return sorted(groups.values(), key=lambda g: (-g["count"], g["phase"], g["reason"]))


def queue_summary(users: Sequence[UserRecord]) -> dict[str, Any]:
    maxima = [max(u.queue_positions) for u in users if u.queue_positions]
    retries = [u.retries_429 for u in users]
    return {
        "users_queued": len(maxima),
        "max_position": max(maxima) if maxima else None,
        "median_max_position": percentile(maxima, 50),
        "users_429": sum(1 for r in retries if r),
        "retries_429": sum(retries),
        "max_429_per_user": max(retries) if retries else 0,
        "seconds_waited_429": sum(u.wait_429 for u in users),
        "reconnects": sum(u.reconnects for u in users),
        "users_reconnected": sum(1 for u in users if u.reconnects),
    }


def _rates(
    begin: float | None, times: Sequence[float], window: float = 10.0
) -> tuple[float | None, float | None]:
    """Events per minute: (average from ``begin`` to the last event, peak over any ``window`` seconds).
    The peak needs at least ``window`` seconds of events to mean anything; shorter spans give None."""
    if not times or begin is None:
        return None, None
    xs = sorted(times)
    span = xs[-1] - begin
    average = len(xs) / span * 60 if span > 0 else None
    if span < window:
        return average, None
    peak, j = 0, 0
    for i, t in enumerate(xs):
        while xs[j] <= t - window:
            j += 1
        peak = max(peak, i - j + 1)
    return average, peak * 60 / window


def throughput(users: Sequence[UserRecord]) -> dict[str, Any]:
    spawns = [s for u in users for s in u.steps if s.phase == "spawn"]
    ready = [s.t1 for s in spawns if s.ok and s.t1 is not None]
    done = [u.end for u in users if u.outcome == "ok" and u.end is not None]
    first_request = min((s.t0 for s in spawns), default=None)
    first_arrival = min((u.arrival for u in users), default=None)
    ready_avg, ready_peak = _rates(first_request, ready)
    done_avg, _ = _rates(first_arrival, done)
    return {
        "servers_ready": len(ready),
        "ready_per_min": ready_avg,
        "ready_per_min_peak_10s": ready_peak,
        "sessions_completed": len(done),
        "sessions_per_min": done_avg,
    }


HUB_FACING = ("login", "start", "spawn", "open", "kernel", "cells", "stop")


def longest_stall(users: Sequence[UserRecord]) -> dict[str, Any] | None:
    """The longest time in which no hub-facing step finished although users were waiting on one: a hub,
    proxy or spawner that stops answering for a while shows up here even when every session succeeds."""
    spans = [[(s.t0, s.t1) for s in u.steps if s.phase in HUB_FACING and s.t1 is not None] for u in users]
    ends = sorted({t1 for user in spans for _, t1 in user})
    gaps = sorted(((b - a, a, b) for a, b in itertools.pairwise(ends)), reverse=True)
    for length, a, b in gaps[:20]:
        waiting = sum(1 for user in spans if any(t0 <= a and t1 >= b for t0, t1 in user))
        if waiting:
            return {"seconds": length, "from": a, "to": b, "users_waiting": waiting}
    return None


def summarize(run: RunRecord) -> dict[str, Any]:
    outcomes: dict[str, int] = defaultdict(int)
    for u in run.users:
        outcomes[u.outcome] += 1
    return {
        "users": len(run.users),
        "outcomes": dict(outcomes),
        "duration": run.duration,
        "phases": phase_table(run.users),
        "throughput": throughput(run.users),
        "failures": failure_groups(run.users),
        "queue": queue_summary(run.users),
        "stall": longest_stall(run.users),
    }


def occupancy(
    users: Sequence[UserRecord], bin_seconds: float, end: float
) -> tuple[list[float], dict[str, list[float]]]:
    """Average number of users in each phase per time bin. Steps of one user never overlap here: a step
    that starts before the previous one ended (``spawn`` overlaps ``start``) is counted from that end."""
    nbins = max(1, math.ceil(end / bin_seconds))
    series = {p: [0.0] * nbins for p in PHASES}
    for u in users:
        prev_end = -math.inf
        for s in sorted(u.steps, key=lambda s: (s.t0, PHASES.index(s.phase) if s.phase in PHASES else 99)):
            t0 = max(s.t0, prev_end)
            t1 = s.t1 if s.t1 is not None else end
            prev_end = max(prev_end, t1)
            if t1 <= t0 or s.phase not in series:
                continue
            first, last = int(t0 // bin_seconds), min(nbins - 1, int(t1 // bin_seconds))
            for b in range(first, last + 1):
                lo, hi = b * bin_seconds, (b + 1) * bin_seconds
                overlap = min(hi, t1) - max(lo, t0)
                if overlap > 0:
                    series[s.phase][b] += overlap / bin_seconds
    centres = [(b + 0.5) * bin_seconds for b in range(nbins)]
    return centres, {p: v for p, v in series.items() if any(v)}


def latency_points(users: Sequence[UserRecord], phase: str) -> tuple[list[float], list[float]]:
    """(end time, duration) of every successful step of ``phase``: latency over time."""
    xs: list[float] = []
    ys: list[float] = []
    for u in users:
        for s in u.steps:
            if s.phase == phase and s.ok and s.t1 is not None:
                xs.append(s.t1)
                ys.append(s.t1 - s.t0)
    return xs, ys


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 100:
        return f"{value:.2f} s"
    return f"{value:.0f} s"
