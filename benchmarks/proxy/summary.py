"""Rewrite the proxy section of docs/benchmarks.md from kept raw results: every figure comes from those files.

Usage (from the repository root): python benchmarks/proxy/summary.py RUN.json[,RUN.json...] RESTART.json[,...]
"""

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import goal_rows, summary

runs = sys.argv[1].split(",")
restarts = sys.argv[2].split(",")
res = [json.loads(Path(p).read_text()) for p in runs]
labels = [r["started"][11:16] + " run" for r in res]
loads = []
for r in res:
    ls = [x["loadavg"] for t in ("small", "1mib") for x in r["http"][t]] + [x["loadavg"] for x in r["ws"]]
    loads.append(f"{min(ls):.1f}-{max(ls):.1f}")
goals = [goal_rows(r) for r in res]
n = len(res)
L = [
    "## Proxy (issues 4, 12, 14): hubkit-proxy vs CHP 5.3.0 vs direct, 50 connections, same run",
    "",
    f"{n} runs, each with every target in 3 rotated rounds; ratios are medians of per-round ratios. Load average before the",
    "measurements, and raw results: "
    + "; ".join(f"{labels[i]} {loads[i]} (`{runs[i]}`)" for i in range(n))
    + ".",
    "Details, every figure and the profiles: [benchmarks/proxy.md](benchmarks/proxy.md).",
    "",
    "| goal (issue 14; hubkit-proxy, 1 process) | " + " | ".join(labels) + " | met? |",
    "| --- | " + " | ".join("---" for _ in labels) + " | --- |",
]
for i, (what, _m, _v) in enumerate(goals[0]):
    vals = [g[i][1] for g in goals]
    ok = [g[i][2] for g in goals]
    met = sum(bool(x) for x in ok)
    v = (
        "met in every run"
        if met == n
        else ("**not met** in any run" if met == 0 else f"**not met** in {n - met} of {n} runs")
    )
    L.append(f"| {what} | " + " | ".join(vals) + f" | {v} |")


def cpu(r, t, k):
    return summary(r, t)[k]["cpu"]


for t, name in (("small", "small GET"), ("1mib", "1 MiB GET"), ("ws", "websocket message")):
    L.append(
        f"| proxy CPU per {name}, hubkit-proxy vs CHP (µs) | "
        + " | ".join(f"{cpu(r, t, 'hubkit-proxy'):.0f} vs {cpu(r, t, 'chp'):,.0f}" for r in res)
        + " | |"
    )
for t, name in (("small", "small GET"), ("1mib", "1 MiB GET"), ("ws", "websocket echo")):
    L.append(
        f"| {name}, rate with 1, 2, 4 worker processes | "
        + " | ".join(
            ", ".join(
                f"{summary(r, t)[k]['rate']:,.0f}"
                for k in ("hubkit-proxy", "hubkit-proxy-w2", "hubkit-proxy-w4")
            )
            for r in res
        )
        + " | (2 CPUs) |"
    )
for t, name in (("small", "small GET"), ("1mib", "1 MiB GET"), ("ws", "websocket echo")):
    L.append(
        f"| nginx behind hubkit-proxy's API, {name}: x CHP, of direct | "
        + " | ".join(
            f"{statistics.median(summary(r, t)['nginx-plane']['vs_chp']):.2f}x, {statistics.median(summary(r, t)['nginx-plane']['vs_direct']):.2f}"
            for r in res
        )
        + " | (measured option) |"
    )
L.append(
    "| `GET /api/routes` at 10,000 routes, median ms: hubkit-proxy vs CHP | "
    + " | ".join(
        f"{statistics.median(r['routes']['hubkit-proxy']['list_ms']):.0f} vs {statistics.median(r['routes']['chp']['list_ms']):.0f}"
        for r in res
    )
    + " | |"
)
L.append(
    "| add 10,000 routes, s: hubkit-proxy vs CHP | "
    + " | ".join(
        f"{r['routes']['hubkit-proxy']['add_s']:.0f} vs {r['routes']['chp']['add_s']:.0f}" for r in res
    )
    + " | |"
)
L += [
    "",
    "| restart (issue 12 item 13) | median | range | load average | goal < 1 s |",
    "| --- | --- | --- | --- | --- |",
]
for p in restarts:
    r = json.loads(Path(p).read_text())
    x = r["restart"]
    s = x["seconds"]
    what = "warm standby (default)" if x["standby"] else "cold start (`standby = false`)"
    L.append(
        f"| kill -9 of the embedded proxy → routed again, {what}, {len(s)} kills (`{p}`) | {x['median_s'] * 1000:.0f} ms | {min(s) * 1000:.0f}-{max(s) * 1000:.0f} ms | {r['machine']['loadavg'][0]:.1f} | {'met' if max(s) < 1 else '**not met** at its maximum'} |"
    )
prof = res[0]["profile"]


def floor(r, t):
    p = r["profile"][t]
    sm = summary(r, t)
    h, c = sm["hubkit-proxy"]["cpu"], sm["chp"]["cpu"]
    f = h * (1 - p["python_pct"] / 100)
    return f"{t}: {f:,.0f} µs vs CHP's {c:,.0f} µs ({c / f:.2f}x)"


L += [
    "",
    "hubkit-proxy's CPU per request or message with its Python share (py-spy) taken away, "
    + labels[0]
    + ": "
    + "; ".join(floor(res[0], t) for t in ("small", "1mib", "ws"))
    + ". That is the most any rewrite of the Python code"
    " could give; what remains is socket system calls and native code.",
]
L += [
    "",
    f"Where the one process's busy time goes (py-spy --native, {labels[0]}, samples not waiting in epoll): "
    + "; ".join(
        f"{t}: {p['syscalls_pct']:.0f}% socket system calls, {p['python_pct']:.0f}% hubkit_proxy's Python"
        for t, p in prof.items()
    )
    + ". Regression guard: `benchmarks/guard/run.py` (CPU per request against `benchmarks/baseline.json`, +30% fails).",
    "",
]
text = "\n".join(L) + "\n"
p = "docs/benchmarks.md"
s = Path(p).read_text()
a = s.index("## Proxy (issues 4, 12, 14)")
b = s.index("## Spawning a real JupyterLab")
Path(p).write_text(s[:a] + text + "\n" + s[b:])
print(text)
