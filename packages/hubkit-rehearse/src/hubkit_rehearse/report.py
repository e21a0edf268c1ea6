"""The report as tables (title, header, rows of strings), rendered for the terminal (rich), Markdown (for
docs) or HTML. Every figure comes from :mod:`hubkit_rehearse.stats` over the run's records; every sentence
is built from those figures."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from .record import RunRecord
from .stats import PERCENTILES, fmt_seconds, summarize

PHASE_LABELS = {
    "login": "login (form or token)",
    "start": "start request answered",
    "spawn": "start request -> ready event",
    "open": "open server through the proxy",
    "kernel": "kernel started (kernel_info reply)",
    "cell": "one cell executed",
    "stop": "stop request -> stopped",
    "session": "whole session (arrival -> end)",
}


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def label(run: RunRecord) -> str:
    return run.tags.get("label") or f"{run.hub_url} ({run.hub_version or 'unknown version'})"


def _load(values: Any) -> str:
    try:
        return "/".join(f"{float(v):.2f}" for v in values)
    except (TypeError, ValueError):
        return "?"


def overview(run: RunRecord, summary: dict[str, Any]) -> list[str]:
    plan = run.plan
    outcomes = summary["outcomes"]
    think = plan.get("think") or [0, 0]  # a result file from another version may lack any of these
    think_text = f"{think[0]:g}" if think[0] == think[1] else f"{think[0]:g}-{think[1]:g}"
    cells = len(plan.get("cells") or []) if plan.get("kernel") and plan.get("open") == "lab" else 0
    lines = [
        f"hub {run.hub_url} (version {run.hub_version}), started {run.started_at}, ran {run.duration:.0f} s",
        f"{summary['users']} users, login {plan.get('login')}, ramp {float(plan.get('ramp') or 0):g} s {plan.get('ramp_shape')}, "
        f"open {plan.get('open')}, cells {cells}, think {think_text} s, concurrency {plan.get('concurrency')}"
        + (f", server {plan['server_name']!r}" if plan.get("server_name") else ""),
        "outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())),
    ]
    if run.interrupted:
        lines.append(f"stopped early: {run.interrupted}")
    m = run.machine
    lines.append(
        f"machine: {m.get('cpus')} CPUs, load average {_load(m.get('loadavg_start'))} at the start, "
        f"{_load(m.get('loadavg_end'))} at the end"
    )
    if run.tags:
        lines.append("tags: " + ", ".join(f"{k}={v}" for k, v in sorted(run.tags.items())))
    return lines


def phase_table(summary: dict[str, Any]) -> Table:
    t = Table(
        "Latency per phase (successful steps)",
        ["phase", "ok", "failed", *[f"p{p}" for p in PERCENTILES], "max"],
    )
    for phase, row in summary["phases"].items():
        t.rows.append(
            [
                PHASE_LABELS.get(phase, phase),
                str(row["n"]),
                str(row["failed"]),
                *[fmt_seconds(row[f"p{p}"]) for p in PERCENTILES],
                fmt_seconds(row["max"]),
            ]
        )
    return t


def _rate(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}/min"


def _stall(st: dict[str, Any] | None) -> str:
    if not st:
        return "-"
    return (
        f"{fmt_seconds(st['seconds'])} (t={st['from']:.0f}-{st['to']:.0f} s, "
        f"{st['users_waiting']} {'user' if st['users_waiting'] == 1 else 'users'} waiting on the hub)"
    )


def throughput_table(summary: dict[str, Any]) -> Table:
    tp = summary["throughput"]
    q = summary["queue"]
    t = Table("Throughput and queueing", ["measure", "value"])
    t.rows += [
        ["servers ready", str(tp["servers_ready"])],
        ["ready rate (first start request to last ready)", _rate(tp["ready_per_min"])],
        ["ready rate, busiest 10 s", _rate(tp["ready_per_min_peak_10s"])],
        ["sessions completed", str(tp["sessions_completed"])],
        ["session completion rate (first arrival to last end)", _rate(tp["sessions_per_min"])],
        ["longest time no step finished while users waited on the hub", _stall(summary.get("stall"))],
        ["users shown a queue position", str(q["users_queued"])],
        ["highest queue position seen", "-" if q["max_position"] is None else str(q["max_position"])],
        [
            "median of each queued user's highest position",
            "-" if q["median_max_position"] is None else f"{q['median_max_position']:.0f}",
        ],
        ["users answered 429 (spawn limit)", str(q["users_429"])],
        ["429 answers in total", str(q["retries_429"])],
        ["seconds waited as Retry-After asked, all users", f"{q.get('seconds_waited_429', 0):.0f}"],
        [
            "requests re-sent: kept-alive connection closed before answering",
            f"{q.get('reconnects', 0)} (for {q.get('users_reconnected', 0)} users)",
        ],
    ]
    return t


def failure_table(summary: dict[str, Any]) -> Table:
    t = Table("Failures by reason", ["count", "phase", "reason", "example"])
    for g in summary["failures"]:
        t.rows.append([str(g["count"]), g["phase"], g["reason"], f"{g['users'][0]}: {g['example']}"])
    if not t.rows:
        t.notes.append("no failures")
    return t


def cleanup_table(run: RunRecord) -> Table:
    c = run.cleanup
    t = Table("Cleanup", ["measure", "value"])
    t.rows += [
        ["servers stopped by cleanup", str(c.get("servers_stopped", 0))],
        ["users created by this run", str(c.get("users_created", 0))],
        ["users removed", str(c.get("users_deleted", 0))],
    ]
    if c.get("servers_left_running"):
        t.rows.append(["servers left running (asked)", str(len(c["servers_left_running"]))])
    if c.get("users_left"):
        t.rows.append(
            ["users left", ", ".join(c["users_left"][:10]) + (" ..." if len(c["users_left"]) > 10 else "")]
        )
    for name, why in list(c.get("stop_failures", {}).items())[:5]:
        t.rows.append([f"could not clean up {name}", why])
    if c.get("note"):
        t.notes.append(c["note"])
    return t


def run_tables(run: RunRecord) -> tuple[list[str], list[Table]]:
    summary = summarize(run)
    return overview(run, summary), [
        phase_table(summary),
        throughput_table(summary),
        failure_table(summary),
        cleanup_table(run),
    ]


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or a <= 0:
        return "-"
    return f"{b / a:.2f}x"


def compare_tables(a: RunRecord, b: RunRecord) -> tuple[list[str], list[Table]]:
    sa, sb = summarize(a), summarize(b)
    la, lb = label(a), label(b)
    lines = [
        f"A = {la}: {a.started_at}, {sa['users']} users",
        f"B = {lb}: {b.started_at}, {sb['users']} users",
    ]
    t = Table(
        "Latency per phase, A vs B (ratio = B / A; above 1 means B took longer)",
        ["phase", "ok A/B", "p50 A", "p50 B", "p50 B/A", "p95 A", "p95 B", "p95 B/A", "max A", "max B"],
    )
    phases = list(dict.fromkeys([*sa["phases"], *sb["phases"]]))
    for phase in phases:
        ra, rb = sa["phases"].get(phase, {}), sb["phases"].get(phase, {})
        t.rows.append(
            [
                PHASE_LABELS.get(phase, phase),
                f"{ra.get('n', 0)}/{rb.get('n', 0)}",
                fmt_seconds(ra.get("p50")),
                fmt_seconds(rb.get("p50")),
                _ratio(ra.get("p50"), rb.get("p50")),
                fmt_seconds(ra.get("p95")),
                fmt_seconds(rb.get("p95")),
                _ratio(ra.get("p95"), rb.get("p95")),
                fmt_seconds(ra.get("max")),
                fmt_seconds(rb.get("max")),
            ]
        )
    o = Table("Outcomes and throughput, A vs B", ["measure", "A", "B", "B/A"])
    for key in ("ok", "failed", "cancelled", "not started"):
        va, vb = sa["outcomes"].get(key, 0), sb["outcomes"].get(key, 0)
        if va or vb:
            o.rows.append([f"sessions {key}", str(va), str(vb), _ratio(va, vb)])
    ta, tb = sa["throughput"], sb["throughput"]
    for key, name in (
        ("ready_per_min", "ready rate"),
        ("ready_per_min_peak_10s", "ready rate, busiest 10 s"),
    ):
        o.rows.append([name, _rate(ta[key]), _rate(tb[key]), _ratio(ta[key], tb[key])])
    qa, qb = sa["queue"], sb["queue"]
    o.rows.append(
        ["highest queue position", str(qa["max_position"] or "-"), str(qb["max_position"] or "-"), "-"]
    )
    o.rows.append(["429 answers", str(qa["retries_429"]), str(qb["retries_429"]), "-"])
    o.rows.append(
        [
            "requests re-sent on closed keep-alive",
            str(qa.get("reconnects", 0)),
            str(qb.get("reconnects", 0)),
            "-",
        ]
    )
    o.rows.append(["longest time no step finished", _stall(sa.get("stall")), _stall(sb.get("stall")), "-"])
    o.rows.append(
        ["run duration", f"{a.duration:.0f} s", f"{b.duration:.0f} s", _ratio(a.duration, b.duration)]
    )
    return lines, [t, o]


# -- renderers -----------------------------------------------------------------------------------------------


def to_markdown(lines: list[str], tables: list[Table]) -> str:
    out = [f"- {line}" for line in lines]
    for t in tables:
        out += ["", f"**{t.title}**", ""]
        if t.rows:
            out.append("| " + " | ".join(t.header) + " |")
            out.append("| " + " | ".join("---" if i == 0 else "---:" for i in range(len(t.header))) + " |")
            for row in t.rows:
                out.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in row) + " |")
        out += [f"_{n}_" for n in t.notes]
    return "\n".join(out) + "\n"


def print_rich(lines: list[str], tables: list[Table], console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text

    console = console or Console(width=None if sys.stdout.isatty() else 160)
    for line in lines:
        console.print(Text(line), highlight=False)
    for t in tables:
        rt = RichTable(title=t.title, title_justify="left", show_lines=False)
        for i, h in enumerate(t.header):
            rt.add_column(
                h,
                justify="left" if i == 0 or h in ("reason", "example", "phase") else "right",
                overflow="fold",
            )
        for row in t.rows:
            rt.add_row(*[Text(c) for c in row])
        if t.rows:
            console.print(rt)
        for n in t.notes:
            console.print(Text(f"{t.title}: {n}"), highlight=False)
