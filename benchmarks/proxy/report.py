"""The markdown report of one proxy benchmark run, computed from that run's raw results and nothing else.

Every number and every verdict below comes from the result dict; there is no fixed conclusion text. Ratios
against CHP or against the backend are taken within a round (same minute, same machine load) and summarised
as the median and range over rounds.
"""

from __future__ import annotations

import statistics
from typing import Any

GOALS = [  # (test, what, comparison, threshold): the targets, for the 1-process hubkit-proxy
    ("small", "req/s ≥ 5x CHP's on small responses", "chp", 5.0),
    ("1mib", "req/s ≥ 2x CHP's on 1 MiB responses", "chp", 2.0),
    ("ws", "websocket msg/s ≥ 0.9 of direct", "direct", 0.9),
    ("ws", "websocket msg/s ≥ 1.3x CHP's", "chp", 1.3),
]
HUBKIT = "hubkit-proxy"
LABELS = {
    "direct": "backend directly (nginx; websocket echo server)",
    "chp": "configurable-http-proxy",
    "hubkit-proxy": "hubkit-proxy, 1 process",
    "hubkit-proxy-w2": "hubkit-proxy --workers 2",
    "hubkit-proxy-w4": "hubkit-proxy --workers 4",
    "nginx-plane": "nginx, routes through hubkit-proxy's API",
}
TESTS = {
    "small": "HTTP GET, 23-byte body",
    "1mib": "HTTP GET, 1 MiB body",
    "ws": "websocket echo, 64-byte messages",
}
PROFILE_LOADS = {
    "small": "wrk -c50 small-response",
    "1mib": "wrk -c50 1 MiB",
    "ws": "200-connection websocket echo",
}


def test_label(res: dict[str, Any], test: str) -> str:
    """What was measured, from the run's own settings."""
    st = res["settings"]
    if test == "ws":
        return f"{TESTS[test]}, {st['ws_conns']} connections x {st['ws_rounds']} round trips"
    return f"{TESTS[test]}, wrk {st['wrk']} -d{st['duration_s']}s"


def _f(x: float | None, nd: int = 0) -> str:
    return "-" if x is None else f"{x:,.{nd}f}"


def runs_of(res: dict[str, Any], test: str) -> list[dict[str, Any]]:
    return list(res.get("ws", [])) if test == "ws" else list(res.get("http", {}).get(test, []))


def rate_key(test: str) -> str:
    return "msgs_per_s" if test == "ws" else "rps"


def by_target(runs: list[dict[str, Any]], key: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for r in runs:
        if r.get(key) is not None:
            out.setdefault(r["target"], []).append(float(r[key]))
    return out


def round_ratios(runs: list[dict[str, Any]], test: str, target: str, other: str) -> list[float]:
    """target/other of the rate, one ratio per round in which both were measured."""
    key = rate_key(test)
    rounds: dict[int, dict[str, float]] = {}
    for r in runs:
        rounds.setdefault(int(r["round"]), {})[r["target"]] = float(r[key])
    return [v[target] / v[other] for v in rounds.values() if target in v and v.get(other)]


def summary(res: dict[str, Any], test: str) -> dict[str, dict[str, Any]]:
    runs = runs_of(res, test)
    key = rate_key(test)
    cpu_key = "cpu_us_per_msg" if test == "ws" else "cpu_us_per_req"
    rates, p99s, cpus = by_target(runs, key), by_target(runs, "p99_ms"), by_target(runs, cpu_key)
    errors = by_target(runs, "failures" if test == "ws" else "socket_errors")
    out: dict[str, dict[str, Any]] = {}
    for target, xs in rates.items():
        out[target] = {
            "rate": statistics.median(xs),
            "rates": xs,
            "p99": statistics.median(p99s[target]) if target in p99s else None,
            "cpu": statistics.median(cpus[target]) if target in cpus else None,
            "errors": sum(errors.get(target, [])),
            "vs_chp": round_ratios(runs, test, target, "chp"),
            "vs_direct": round_ratios(runs, test, target, "direct"),
        }
    return out


def _ratio(xs: list[float]) -> str:
    if not xs:
        return "-"
    lo, mid, hi = min(xs), statistics.median(xs), max(xs)
    return f"{mid:.2f}x ({lo:.2f}-{hi:.2f})" if len(xs) > 1 else f"{mid:.2f}x"


def goal_rows(res: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    rows: list[tuple[str, str, bool | None]] = []
    for test, what, other, threshold in GOALS:
        s = summary(res, test).get(HUBKIT)
        ratios = (s or {}).get("vs_chp" if other == "chp" else "vs_direct", [])
        if not ratios:
            rows.append((what, "not measured in this run", None))
            continue
        mid = statistics.median(ratios)
        rows.append((what, f"{mid:.2f}x (rounds: {', '.join(f'{x:.2f}' for x in ratios)})", mid >= threshold))
    mem = res.get("memory", {})
    if HUBKIT in mem and "chp" in mem:
        share = mem[HUBKIT]["rss_mib"] / mem["chp"]["rss_mib"]
        rows.append(
            (
                "RSS ≤ ½ of CHP's (after the load)",
                f"{mem[HUBKIT]['rss_mib']:.1f} vs {mem['chp']['rss_mib']:.1f} MiB = {share:.2f}",
                share <= 0.5,
            )
        )
    return rows


def _verdict(met: bool | None) -> str:
    return "not measured" if met is None else ("**met**" if met else "**not met**")


def conclusions(res: dict[str, Any]) -> list[str]:
    """Sentences whose every figure and direction is computed from the run."""
    out: list[str] = []
    for what, measured, met in goal_rows(res):
        out.append(f"{what}: {_verdict(met)}; hubkit-proxy (1 process) measured {measured}.")
    for test in ("small", "1mib", "ws"):
        s = summary(res, test)
        h, c = s.get(HUBKIT, {}), s.get("chp", {})
        if h.get("cpu") and c.get("cpu"):
            unit = "message" if test == "ws" else "request"
            out.append(
                f"{test_label(res, test)}: hubkit-proxy used {h['cpu']:,.1f} µs of CPU per {unit} and CHP "
                f"{c['cpu']:,.1f} µs, {c['cpu'] / h['cpu']:.2f}x as much."
            )
        workers = [t for t in (HUBKIT, "hubkit-proxy-w2", "hubkit-proxy-w4") if t in s]
        if len(workers) > 1:
            rates = [s[t]["rate"] for t in workers]
            best = workers[rates.index(max(rates))]
            out.append(
                f"{test_label(res, test)} with "
                + ", ".join(f"{LABELS[t]} {s[t]['rate']:,.0f}/s" for t in workers)
                + f": the most was {LABELS[best]}, on {res['machine']['cpus']} CPUs that the load generator and the "
                "backend share."
            )
        if "nginx-plane" in s and c:
            out.append(
                f"{test_label(res, test)}: nginx driven through hubkit-proxy's API served "
                f"{_ratio(s['nginx-plane']['vs_chp'])} CHP's rate and {_ratio(s['nginx-plane']['vs_direct'])} of "
                "direct."
            )
        errs = {t: v["errors"] for t, v in s.items() if v["errors"]}
        if errs:
            out.append(
                f"{test_label(res, test)}: errors seen — "
                + ", ".join(f"{t}: {int(n)}" for t, n in errs.items())
                + "."
            )
    prof = res.get("profile")
    if prof:
        for test, p in prof.items():
            if "skipped" in p or not p.get("busy"):
                continue
            s = summary(res, test)
            h, c = s.get(HUBKIT, {}).get("cpu"), s.get("chp", {}).get("cpu")
            if h and c:
                floor = h * (1 - p["python_pct"] / 100)
                unit = "message" if test == "ws" else "request"
                out.append(
                    f"{test_label(res, test)}: without any of its Python code (the {p['python_pct']:.0f}% of busy "
                    f"samples in hubkit_proxy), hubkit-proxy would still use about {floor:,.1f} µs of CPU per {unit}, "
                    f"{c / floor:.2f}x less than CHP's {c:,.1f} µs; the rest is system calls and native code."
                )
            out.append(
                f"py-spy --native on hubkit-proxy (1 process) during the {PROFILE_LOADS.get(test, test)} load: of "
                f"{p['busy']} samples not waiting in epoll ({p['idle_pct']:.0f}% of all {p['samples']} were), "
                f"{p['syscalls_pct']:.0f}% were in socket system calls ({', '.join(p['syscalls'])}), "
                f"{p['python_pct']:.0f}% in hubkit_proxy's Python code, {p['native_pct']:.0f}% in native code of "
                f"uvloop, httptools, libc and CPython, {p['other_pct']:.0f}% elsewhere."
            )
    return out


def markdown(res: dict[str, Any], source: str = "") -> str:
    m, st, v = res["machine"], res["settings"], res.get("versions", {})
    http_loads = [r["loadavg"] for t in ("small", "1mib") for r in runs_of(res, t)] + [
        r["loadavg"] for r in runs_of(res, "ws")
    ]
    sha = res["commit"]["sha"][:10] + (" with uncommitted changes" if res["commit"].get("dirty") else "")
    lines = [
        f"Run of {res['started']} at commit `{sha}`: {m['cpus']} CPUs (shared), 1-minute load average "
        f"{m['loadavg'][0]:.2f} at start and {m.get('loadavg_end', [float('nan')])[0]:.2f} at end"
        + (f", {min(http_loads):.2f}-{max(http_loads):.2f} before each measurement" if http_loads else "")
        + f". CHP {v.get('chp', '?')} on node {v.get('node', '?')}, nginx {v.get('nginx', '?')}, "
        f"Python {m['python']}, uvloop {v.get('uvloop', '?')}. {st['rounds']} rounds, each target once per round, "
        f"order rotated; wrk {st['wrk']} -d{st['duration_s']}s."
        + (f" Raw results: `{source}`." if source else ""),
        "",
        "| test | target | rate, median (each round) | p99 ms | proxy CPU µs per request/message | vs CHP, per round | vs direct, per round |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for test in ("small", "1mib", "ws"):
        for target, s in summary(res, test).items():
            rates = ", ".join(_f(x) for x in s["rates"])
            lines.append(
                f"| {test_label(res, test)} | {LABELS.get(target, target)} | {_f(s['rate'])} ({rates}) | {_f(s['p99'], 1)} | "
                f"{_f(s['cpu'], 1)} | {_ratio(s['vs_chp'])} | {_ratio(s['vs_direct'])} |"
            )
    mem = res.get("memory", {})
    if mem:
        lines += ["", "| memory after the load | RSS MiB | PSS MiB | processes |", "|---|---:|---:|---:|"]
        for target, x in mem.items():
            lines.append(
                f"| {LABELS.get(target, target)} | {x['rss_mib']:.1f} | {x['pss_mib']:.1f} | {x['processes']} |"
            )
    rt = res.get("routes")
    if rt and "chp" in rt and HUBKIT in rt:
        n = rt["count"]
        lines += ["", f"| {n:,} routes | CHP | hubkit-proxy |", "|---|---:|---:|"]
        c, h = rt["chp"], rt[HUBKIT]
        lines.append(f"| add {n:,} routes, 10 concurrent POSTs, s | {c['add_s']:.2f} | {h['add_s']:.2f} |")
        lines.append(
            f"| GET /api/routes, median of 10, ms | {statistics.median(c['list_ms']):.1f} | {statistics.median(h['list_ms']):.1f} |"
        )
        lines.append(
            f"| small GET req/s with 2 routes / with {n:,} (median of 3 alternating) | "
            f"{statistics.median(c['rps_2_routes']):,.0f} / {statistics.median(c['rps_many_routes']):,.0f} | "
            f"{statistics.median(h['rps_2_routes']):,.0f} / {statistics.median(h['rps_many_routes']):,.0f} |"
        )
    lines += ["", "| goal (hubkit-proxy, 1 process) | measured | verdict |", "|---|---|---|"]
    for what, measured, met in goal_rows(res):
        lines.append(f"| {what} | {measured} | {_verdict(met)} |")
    lines += ["", "What this run shows:", ""] + [f"- {c}" for c in conclusions(res)]
    return "\n".join(lines) + "\n"
