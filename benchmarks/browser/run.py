#!/usr/bin/env python3
"""Time to a working JupyterLab in a real browser (issue 14, item 4): hubkit vs JupyterHub 6.1.1 + CHP, same run.

    .venv-test/bin/python benchmarks/browser/run.py [--users 5] [--warmup 1] [--no-docs]
    .venv-test/bin/python benchmarks/browser/run.py --docs-from RESULT.json   # rewrite the docs section

Needs Chromium at /usr/bin/chromium, JupyterHub 6.1.1 and JupyterLab in the venv (dev.py's test extras) and
configurable-http-proxy from ``.ci/setup/proxy.sh`` (``.cache/npm``; or name it in ``HUBKIT_CHP_BIN``).

Both hubs run as users run them: hubkit with the demo config (``hubkit -f examples/demo/hubkit.toml`` with port 0
and a temporary data directory: hubkit-proxy, local spawner, hubkit-singleuser, dummy login), JupyterHub 6.1.1 with
configurable-http-proxy, its SimpleLocalProcessSpawner running ``jupyterhub-singleuser`` and its dummy login
(``benchmarks/spawn/jupyterhub_ref.py``); both land in ``/lab``. Headless Chromium (Debian's, through Playwright)
with a fresh browser context (empty cache and cookies) per user; users go one after the other, the two hubs
alternating and the order swapped every round, each user's server stopped before the next user starts.

Per user, three phases, wall time in the script:

* **login**: open ``/hub/login?next=/hub/home``, type the name, submit, until the home page has loaded;
* **Start → Lab**: click Start on the home page until JupyterLab's launcher is visible (the Lab shell usable);
* **Lab → 42**: open a notebook from the launcher, wait for the kernel to be idle, run ``print(6*7)`` until the
  output ``42`` is shown.

Between Start and the launcher, every request the page made is kept with Playwright's timings and sizes (bytes
on the wire, body as transferred), so the report can say where the browser waited. Raw results (with the commit
and load averages) go to ``benchmarks/results/browser/``; the browser section of ``docs/benchmarks.md`` is
written from them, every sentence computed from the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(HERE.parent / "spawn"))
sys.path.insert(0, str(HERE.parent))
import record  # noqa: E402
from e2e_hub import CHROMIUM, CHROMIUM_ARGS, Hub  # noqa: E402
from hubkit.testing.processes import free_port  # noqa: E402
from jupyterhub_ref import JupyterHub  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- browser:begin -->", "<!-- browser:end -->"
SIDES = ("hubkit", "jupyterhub")
LABEL = {"hubkit": "hubkit", "jupyterhub": "JupyterHub 6.1.1 + CHP"}
GOAL_START_TO_LAB = 0.5
PHASES = (("login", "login"), ("start_to_lab", "Start → Lab launcher"), ("lab_to_42", "Lab → `42`"))
TIMEOUT_MS = 120_000


def chp_path() -> str:
    env = os.environ.get("HUBKIT_CHP_BIN")
    for cand in (env, str(ROOT / ".cache/npm/node_modules/.bin/configurable-http-proxy")):
        if cand and Path(cand).exists():
            return cand
    raise SystemExit("configurable-http-proxy not found: run .ci/setup/proxy.sh or set HUBKIT_CHP_BIN")


class Side:
    """One hub as the browser sees it: its URL, its login form's selectors, its Start button, stopping a server."""

    def __init__(self, name: str, work: Path) -> None:
        self.name = name
        if name == "hubkit":
            self.hub: Any = Hub(work / "hubkit")
            self.user_field, self.submit, self.start_button = (
                "#username",
                "#login-submit",
                "button.start, a.start",
            )
        else:
            self.hub = JupyterHub(work / "jupyterhub", chp_path(), (free_port(), free_port(), free_port()))
            # its local spawner's homes default to /tmp/<name>: keep them in this run's folder, so that no
            # notebook or saved Lab workspace of an earlier run is found again (and none is left behind)
            with (work / "jupyterhub" / "jupyterhub_config.py").open("a") as cfg:
                cfg.write(
                    f"c.SimpleLocalProcessSpawner.home_dir_template = {str(work / 'homes' / '{username}')!r}\n"
                )
            self.user_field, self.submit, self.start_button = "#username_input", "#login_submit", "#start"

    @property
    def url(self) -> str:
        return str(self.hub.url)

    def start(self) -> None:
        self.hub.start()

    def stop_server(self, user: str) -> None:
        api = self.hub.admin if self.name == "hubkit" else self.hub.api()
        with api:
            api.delete(f"/users/{user}/server")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                model = api.get(f"/users/{user}").json()
                if not model.get("servers") and not model.get("pending"):
                    return
                time.sleep(0.1)

    def cleanup(self) -> None:
        if self.name == "hubkit":
            self.hub.cleanup()
        else:
            self.hub.stop()


def _entry(req: Any, t_click: float) -> dict[str, Any] | None:
    """One request of the Start → Lab window: Playwright's timings (ms) and the bytes it moved."""
    timing = req.timing
    start = float(timing.get("startTime", 0))
    if start <= 0:
        return None
    end = float(timing.get("responseEnd", -1))
    resp = req.response()
    sizes = req.sizes() if resp is not None else {}
    headers = resp.headers if resp is not None else {}
    return {
        "url": req.url,
        "method": req.method,
        "type": req.resource_type,
        "status": resp.status if resp is not None else None,
        "start_ms": round(start - t_click * 1000, 1),  # after the click
        "duration_ms": round(end, 1) if end >= 0 else None,
        "wait_ms": round(float(timing["responseStart"]) - float(timing["requestStart"]), 1)
        if timing.get("responseStart", -1) >= 0 and timing.get("requestStart", -1) >= 0
        else None,
        "body_bytes": int(sizes.get("responseBodySize", 0) or 0),
        "header_bytes": int(sizes.get("responseHeadersSize", 0) or 0),
        "encoding": headers.get("content-encoding", ""),
        "cache_control": headers.get("cache-control", ""),
        "redirect": bool(resp is not None and 300 <= resp.status < 400),
    }


def one_user(browser: Any, side: Side, user: str) -> dict[str, Any]:
    from playwright.sync_api import expect

    ctx = browser.new_context()  # a fresh profile: no cache, no cookies
    page = ctx.new_page()
    finished: list[Any] = []
    out: dict[str, Any] = {"user": user, "loadavg": record.load1()}
    try:
        t0 = time.time()
        page.goto(f"{side.url}/hub/login?next=%2Fhub%2Fhome")
        page.fill(side.user_field, user)
        page.click(side.submit)
        page.wait_for_url(re.compile(r".*/hub/home$"), timeout=TIMEOUT_MS)
        page.wait_for_load_state()
        t1 = time.time()
        recording = [True]

        def keep(req: Any) -> None:
            if recording[0]:
                finished.append(req)

        page.on("requestfinished", keep)
        page.on("requestfailed", keep)
        navs: list[tuple[float, str]] = []
        page.on(
            "framenavigated", lambda f: navs.append((time.time(), f.url)) if f == page.main_frame else None
        )
        t_click = time.time()
        page.locator(side.start_button).first.click()
        page.locator(".jp-LauncherCard").first.wait_for(state="visible", timeout=TIMEOUT_MS)
        t2 = time.time()
        recording[0] = False
        window = list(finished)
        page.locator('.jp-LauncherCard[data-category="Notebook"]').first.click(timeout=TIMEOUT_MS)
        panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
        expect(page.get_by_text(re.compile(r"Python 3 \(ipykernel\) \| Idle"))).to_be_visible(
            timeout=TIMEOUT_MS
        )
        editor = panel.locator(".jp-Cell .cm-content").first
        editor.click(timeout=TIMEOUT_MS)
        page.keyboard.type("print(6*7)")
        page.keyboard.press("Shift+Enter")
        expect(panel.locator(".jp-OutputArea-output").first).to_have_text(
            re.compile(r"^\s*42\s*$"), timeout=TIMEOUT_MS
        )
        t3 = time.time()
        requests = [e for e in (_entry(r, t_click) for r in window) if e is not None]
        out.update(
            login=t1 - t0,
            start_to_lab=t2 - t_click,
            lab_to_42=t3 - t2,
            navigations=[{"at_ms": round((t - t_click) * 1000, 1), "url": u} for t, u in navs if t <= t2],
            requests=requests,
        )
        return out
    except Exception:
        shot = Path(tempfile.gettempdir()) / f"hubkit-browser-bench-{side.name}-{user}.png"
        page.screenshot(path=str(shot))
        print(f"screenshot of the failure: {shot}", flush=True)
        raise
    finally:
        ctx.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="hubkit-browser-bench-"))
    sides = {name: Side(name, work) for name in SIDES}
    result: dict[str, Any] = {
        "kind": "browser",
        "commit": record.commit(),
        "machine": record.machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": {
            "users": args.users,
            "warmup": args.warmup,
            "chromium": CHROMIUM,
            "args": CHROMIUM_ARGS,
            "note": args.note,
        },
        "runs": {name: [] for name in SIDES},
        "warmup": {name: [] for name in SIDES},
        "failures": [],
    }
    try:
        for s in sides.values():
            s.start()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            result["settings"]["chromium_version"] = browser.version
            try:
                for rnd in range(args.warmup + args.users):
                    order = SIDES if rnd % 2 == 0 else SIDES[::-1]
                    for name in order:
                        user = f"bru{rnd}"
                        kept = "warmup" if rnd < args.warmup else "runs"
                        try:
                            got = one_user(browser, sides[name], user)
                        except Exception as exc:  # kept, counted and reported, not hidden
                            print(f"round {rnd} {name}: FAILED {type(exc).__name__}: {exc}"[:400], flush=True)
                            result["failures"].append(
                                {
                                    "round": rnd,
                                    "side": name,
                                    "warmup": kept == "warmup",
                                    "error": str(exc)[:2000],
                                }
                            )
                            sides[name].stop_server(user)
                            continue
                        got["round"] = rnd
                        sides[name].stop_server(user)
                        result[kept][name].append(got)
                        print(
                            f"round {rnd} {name:10s} login {got['login']:.2f}s  start→lab {got['start_to_lab']:.2f}s"
                            f"  lab→42 {got['lab_to_42']:.2f}s  requests {len(got['requests'])}"
                            f"  load {got['loadavg']:.2f}"
                            + ("  (warm-up, not counted)" if kept == "warmup" else ""),
                            flush=True,
                        )
            finally:
                browser.close()
    finally:
        for s in sides.values():
            s.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    result["machine"]["loadavg_end"] = list(os.getloadavg())
    return result


# ---------------------------------------------------------------- analysis (everything the report says)


def _kind(url: str, user: str) -> str:
    path = urlsplit(url).path
    if path.startswith("/hub/"):
        return "hub"
    if "/static/" in path:
        return "static asset"
    if re.search(r"/api/(events|kernels/[^/]+/channels)", path):
        return "server stream"
    if "/api/" in path or "/lab/api/" in path:
        return "server API"
    return "server page"


def _pattern(url: str, user: str) -> str:
    path = urlsplit(url).path.replace(f"/{user}/", "/{user}/").replace(f"/{user}", "/{user}")
    path = re.sub(r"[0-9a-f]{8,}", "…", path)
    return path


def _ninety_percent_in(static: list[dict[str, Any]]) -> float:
    """When (s after the click) 90% of the static bytes had arrived: the asset wave without its lazy tail."""
    done = sorted(
        (q["start_ms"] + q["duration_ms"], q["body_bytes"]) for q in static if q["duration_ms"] is not None
    )
    total, got = sum(b for _, b in done), 0
    for end, size in done:
        got += size
        if got >= 0.9 * total:
            return end / 1000
    return float("nan")


def stats(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def analyse(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for side in SIDES:
        runs = result["runs"][side]
        a: dict[str, Any] = {ph: stats([r[ph] for r in runs]) for ph, _ in PHASES}
        counts, bytes_, redirects, hub_reqs, encoded = [], [], [], [], []
        first_server, lab_doc, static_span, static_bytes, ready_gap = [], [], [], [], []
        build_checks: list[int] = []
        slow: dict[str, list[float]] = {}
        kinds: dict[str, list[int]] = {}
        for r in runs:
            reqs = r["requests"]
            counts.append(len(reqs))
            bytes_.append(sum(q["body_bytes"] + q["header_bytes"] for q in reqs))
            redirects.append(sum(1 for q in reqs if q["redirect"]))
            hub_reqs.append(sum(1 for q in reqs if _kind(q["url"], r["user"]) == "hub"))
            static = [q for q in reqs if _kind(q["url"], r["user"]) == "static asset"]
            encoded.append(sum(1 for q in static if q["encoding"]) / max(len(static), 1))
            server = [q["start_ms"] for q in reqs if urlsplit(q["url"]).path.startswith(f"/user/{r['user']}")]
            first_server.append(min(server) / 1000 if server else float("nan"))
            streams = [
                q["start_ms"] + q["duration_ms"]
                for q in reqs
                if q["type"] == "eventsource" and q["duration_ms"] is not None
            ]
            ready_gap.append(first_server[-1] - max(streams) / 1000 if streams and server else float("nan"))
            build_checks.append(sum(1 for q in reqs if urlsplit(q["url"]).path.endswith("/lab/api/build")))
            docs = [
                q
                for q in reqs
                if q["type"] == "document" and q["status"] == 200 and "/lab" in urlsplit(q["url"]).path
            ]
            lab_doc.append(
                (docs[0]["start_ms"] + (docs[0]["duration_ms"] or 0)) / 1000 if docs else float("nan")
            )
            static_span.append(_ninety_percent_in(static) - lab_doc[-1])
            static_bytes.append(sum(q["body_bytes"] for q in static))
            per_kind: dict[str, int] = {}
            for q in reqs:
                k = _kind(q["url"], r["user"])
                per_kind[k] = per_kind.get(k, 0) + 1
                if q["duration_ms"] is not None and k != "server stream":
                    slow.setdefault(f"{q['method']} {_pattern(q['url'], r['user'])}", []).append(
                        q["duration_ms"]
                    )
            for k, v in per_kind.items():
                kinds.setdefault(k, []).append(v)
        a["requests"] = stats(counts)
        a["bytes"] = stats(bytes_)
        a["redirects"] = stats(redirects)
        a["hub_requests"] = stats(hub_reqs)
        a["static_compressed_share"] = statistics.median(encoded)
        a["kinds"] = {k: statistics.median(v) for k, v in sorted(kinds.items())}
        a["to_first_server_request"] = stats(first_server)
        a["to_lab_html"] = stats(lab_doc)
        a["static_after_html"] = stats(static_span)
        a["ready_gap"] = stats(ready_gap)
        a["build_checks"] = stats(build_checks)
        a["static_bytes"] = stats(static_bytes)
        a["lab_html_to_launcher"] = stats([r["start_to_lab"] - d for r, d in zip(runs, lab_doc, strict=True)])
        a["share_before_server"] = statistics.median(
            f / r["start_to_lab"] for r, f in zip(runs, first_server, strict=True)
        )
        a["share_after_html"] = statistics.median(
            (r["start_to_lab"] - d) / r["start_to_lab"] for r, d in zip(runs, lab_doc, strict=True)
        )
        a["slowest"] = sorted(
            ({"request": k, "median_ms": statistics.median(v), "seen": len(v)} for k, v in slow.items()),
            key=lambda x: -x["median_ms"],
        )[:6]
        out[side] = a
    # per-round ratios: each hubkit user against the JupyterHub user of the same round
    by_round = {r["round"]: r for r in result["runs"]["jupyterhub"]}
    pairs = [(h, by_round[h["round"]]) for h in result["runs"]["hubkit"] if h["round"] in by_round]
    out["ratios"] = {ph: stats([h[ph] / j[ph] for h, j in pairs]) for ph, _ in PHASES}
    out["ratio_of_medians"] = {
        ph: out["hubkit"][ph]["median"] / out["jupyterhub"][ph]["median"] for ph, _ in PHASES
    }
    return out


def s(x: float) -> str:
    return f"{x:.2f} s"


def rng(st: dict[str, float], fmt: Any = s) -> str:
    return f"{fmt(st['median'])} (range {fmt(st['min'])}-{fmt(st['max'])})"


def report_lines(result: dict[str, Any], path: str) -> list[str]:
    a = analyse(result)
    m = result["machine"]
    n = len(result["runs"]["hubkit"])
    loads = [r["loadavg"] for side in SIDES for r in result["runs"][side]]
    sha = result["commit"]["sha"][:10] + (" with uncommitted changes" if result["commit"]["dirty"] else "")
    lines = [
        "## Time to a working JupyterLab in a real browser vs JupyterHub 6.1.1 + CHP (issue 14, item 4)",
        "",
        f"Run {result['started']}, commit `{sha}`, `benchmarks/browser/run.py` (this section is written by it); raw "
        f"JSON `{path}`. {m['cpus']} CPUs shared with other work; 1-minute load average "
        f"{min(loads):.2f}-{max(loads):.2f} at the start of the measured users ({m['loadavg'][0]:.2f} at the start of "
        f"the run, {m['loadavg_end'][0]:.2f} at its end). Headless Chromium "
        f"{result['settings'].get('chromium_version', '?')}, a fresh browser context per user; {n} users per hub "
        f"one after the other, hubs alternating with the order swapped every round, after "
        f"{result['settings']['warmup']} warm-up round(s) not counted. hubkit: the demo config (hubkit-proxy, local "
        "spawner, hubkit-singleuser); JupyterHub: CHP, SimpleLocalProcessSpawner, jupyterhub-singleuser; both "
        "dummy login, both land in `/lab`.",
        "",
        "| phase (wall time, median and range) | hubkit | JupyterHub 6.1.1 + CHP | hubkit / JupyterHub: of medians "
        "(per-round range) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for ph, what in PHASES:
        lines.append(
            f"| {what} | {rng(a['hubkit'][ph])} | {rng(a['jupyterhub'][ph])} | "
            f"{a['ratio_of_medians'][ph]:.2f}x ({a['ratios'][ph]['min']:.2f}-{a['ratios'][ph]['max']:.2f}x) |"
        )
    lines += [
        "",
        "Between the Start click and the launcher (medians per user):",
        "",
        "| | hubkit | JupyterHub 6.1.1 + CHP |",
        "| --- | ---: | ---: |",
        f"| requests (of them redirects) | {a['hubkit']['requests']['median']:.0f} "
        f"({a['hubkit']['redirects']['median']:.0f}) | {a['jupyterhub']['requests']['median']:.0f} "
        f"({a['jupyterhub']['redirects']['median']:.0f}) |",
        f"| requests to the hub | {a['hubkit']['hub_requests']['median']:.0f} | "
        f"{a['jupyterhub']['hub_requests']['median']:.0f} |",
        f"| bytes received (headers + bodies as sent) | {a['hubkit']['bytes']['median'] / 1e6:.2f} MB | "
        f"{a['jupyterhub']['bytes']['median'] / 1e6:.2f} MB |",
        f"| static assets sent compressed | {a['hubkit']['static_compressed_share']:.0%} | "
        f"{a['jupyterhub']['static_compressed_share']:.0%} |",
        f"| click → first request to `/user/…` (server ready, then the browser sent there) | "
        f"{s(a['hubkit']['to_first_server_request']['median'])} | "
        f"{s(a['jupyterhub']['to_first_server_request']['median'])} |",
        f"| progress stream closed (server ready) → first request to `/user/…` | "
        f"{a['hubkit']['ready_gap']['median'] * 1000:.0f} ms | {a['jupyterhub']['ready_gap']['median'] * 1000:.0f} ms |",
        f"| click → `/lab` HTML received | {s(a['hubkit']['to_lab_html']['median'])} | "
        f"{s(a['jupyterhub']['to_lab_html']['median'])} |",
        f"| JupyterLab build checks (`GET /lab/api/build`) | {a['hubkit']['build_checks']['median']:.0f} | "
        f"{a['jupyterhub']['build_checks']['median']:.0f} |",
        f"| static assets: bytes; `/lab` HTML → 90% of their bytes received | "
        f"{a['hubkit']['static_bytes']['median'] / 1e6:.2f} MB; {s(a['hubkit']['static_after_html']['median'])} | "
        f"{a['jupyterhub']['static_bytes']['median'] / 1e6:.2f} MB; "
        f"{s(a['jupyterhub']['static_after_html']['median'])} |",
        f"| `/lab` HTML → launcher visible (assets, Lab's own API calls, rendering) | "
        f"{s(a['hubkit']['lab_html_to_launcher']['median'])} | {s(a['jupyterhub']['lab_html_to_launcher']['median'])} |",
        "",
    ]
    for side in SIDES:
        top = "; ".join(f"`{x['request']}` {x['median_ms']:.0f} ms" for x in a[side]["slowest"][:5])
        lines.append(f"* Slowest requests of {LABEL[side]} (median duration, request to last byte): {top}.")
    ratio = a["ratio_of_medians"]["start_to_lab"]
    met = ratio <= GOAL_START_TO_LAB
    lines.append(
        f"* Goal Start → Lab ≤ {GOAL_START_TO_LAB}x JupyterHub's: {'met' if met else 'not met'} "
        f"({ratio:.2f}x of medians, per round {a['ratios']['start_to_lab']['min']:.2f}-"
        f"{a['ratios']['start_to_lab']['max']:.2f}x)."
    )
    lr = a["ratio_of_medians"]["login"]
    lines.append(
        f"* Login took {lr:.2f}x JupyterHub's time; Lab → `42` took {a['ratio_of_medians']['lab_to_42']:.2f}x."
    )
    failures = result.get("failures", [])
    if failures:
        per = {sd: sum(1 for f in failures if f["side"] == sd) for sd in SIDES}
        lines.append(
            f"* {len(failures)} user(s) did not reach `42` ("
            + ", ".join(f"{LABEL[sd]}: {c}" for sd, c in per.items())
            + "; first error: "
            + failures[0]["error"].splitlines()[0][:160]
            + f"; {sum(1 for f in failures if f['round'] < result['settings']['warmup'])} of them in warm-up rounds); they are left out of "
            "the figures and their rounds out of the per-round ratios."
        )
    hk, jh = a["hubkit"], a["jupyterhub"]
    share_wait, share_lab = hk["share_before_server"], hk["share_after_html"]
    lines.append(
        f"* Of hubkit's Start → Lab (median of the users' shares), {share_wait:.0%} passed before the browser was sent to the server and "
        f"{share_lab:.0%} after the `/lab` HTML arrived (JupyterLab loading its assets and starting); "
        f"JupyterHub spent {s(jh['to_first_server_request']['median'])} and "
        f"{s(jh['lab_html_to_launcher']['median'])} on the same two stretches."
    )
    return lines


def history() -> list[str]:
    """One row per kept run of this script (measured users on both sides), oldest first: before/after figures."""
    folder = ROOT / "benchmarks" / "results" / "browser"
    current: list[tuple[str, float, float]] = []
    rows = [
        "| kept run | commit measured | users (hubkit / JupyterHub) | Start -> Lab, hubkit | Start -> Lab, "
        "JupyterHub | ratio of medians | `/lab` HTML -> launcher, hubkit / JupyterHub "
        "| hubkit: ready -> `/user/` request; build checks | load average (users) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for f in sorted(folder.glob("*.json")):
        r = json.loads(f.read_text())
        if not r["runs"]["hubkit"] or not r["runs"]["jupyterhub"]:
            continue
        a = analyse(r)
        loads = [u["loadavg"] for sd in SIDES for u in r["runs"][sd]]
        sha = r["commit"]["sha"][:10] + ("+changes" if r["commit"]["dirty"] else "")
        measured = f"`{sha}`" + (f" ({r['settings']['note']})" if r["settings"].get("note") else "")
        rows.append(
            f"| `{f.name}` | {measured} | {len(r['runs']['hubkit'])} / {len(r['runs']['jupyterhub'])} "
            f"| {s(a['hubkit']['start_to_lab']['median'])} | {s(a['jupyterhub']['start_to_lab']['median'])} "
            f"| {a['ratio_of_medians']['start_to_lab']:.2f}x | {s(a['hubkit']['lab_html_to_launcher']['median'])} / "
            f"{s(a['jupyterhub']['lab_html_to_launcher']['median'])} | {a['hubkit']['ready_gap']['median'] * 1000:.0f} ms; "
            f"{a['hubkit']['build_checks']['median']:.0f} | {min(loads):.1f}-{max(loads):.1f} |"
        )
        if not r["commit"]["dirty"] and _same_packages(r["commit"]["sha"]) and len(r["runs"]["hubkit"]) >= 3:
            current.append((f.name, a["ratio_of_medians"]["start_to_lab"], max(loads)))
    if current:
        met = [c for c in current if c[1] <= GOAL_START_TO_LAB]
        rows += [
            "",
            f"{len(current)} kept run(s) of 3 or more users per hub measured the packages of the current commit "
            f"(`packages/` unchanged since the run's commit, nothing uncommitted); the Start -> Lab goal (<= "
            f"{GOAL_START_TO_LAB}x) was met in {len(met)} of them; their ratios: "
            + ", ".join(
                f"{ratio:.2f}x (`{name}`, load average up to {load:.1f})" for name, ratio, load in current
            )
            + ".",
        ]
    return rows


def _same_packages(sha: str) -> bool:
    """Whether ``packages/`` at ``sha`` is the tree the current commit has (what a run measured is what ships)."""

    def tree(rev: str) -> str:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", f"{rev}:packages"],
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout.strip()

    return bool(tree(sha)) and tree(sha) == tree("HEAD")


def write_docs(result: dict[str, Any], path: str) -> None:
    block = "\n".join(
        [
            BEGIN,
            *report_lines(result, path),
            "",
            "Every kept run of this script (medians):",
            "",
            *history(),
            END,
        ]
    )
    record.write_section(DOCS, BEGIN, END, block)
    print(f"wrote the browser section of {DOCS}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=5, help="measured users per hub (one per round)")
    ap.add_argument("--warmup", type=int, default=1, help="rounds run first and not counted")
    ap.add_argument("--no-docs", action="store_true")
    ap.add_argument(
        "--note", default="", help="what this run measured beyond its commit (an experiment), kept"
    )
    ap.add_argument("--docs-from", metavar="RESULT", help="only write the docs section from a kept result")
    args = ap.parse_args()
    if args.docs_from:
        p = Path(args.docs_from)
        write_docs(json.loads(p.read_text()), str(p.resolve().relative_to(ROOT)))
        return 0
    if args.users < 1 or args.users > 20:
        raise SystemExit("--users: 1 to 20 (the run is bounded)")
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} not found (apt-get install chromium)")
    result = run(args)
    path = record.save("browser", result)
    rel = str(path.relative_to(ROOT))
    print(f"kept {rel}")
    print("\n".join(report_lines(result, rel)))
    if not args.no_docs:
        write_docs(result, rel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
