"""The long schemathesis run of docs/benchmarks.md: every conformance check, positive and negative modes, against
a real hub behind hubkit-proxy. The hub's own /hub/metrics counts what it answered (by status code), so the
figures do not depend on schemathesis' reporting.

Both tokens are admin services' from the config: a user's token can be revoked by the requests being generated
(``DELETE /users/{name}/tokens/{id}``), after which the rest of a run would only meet 401/403 and the final
count could not be read; a config service's token cannot be. The fuzzer knows only its own.

    python benchmarks/fuzz/run.py --max-examples 700 [--seed N] [--workers N]

Writes benchmarks/results/fuzz/<UTC time>.json, prints a summary computed from it and writes it into
docs/benchmarks.md (between ``<!-- fuzz:begin -->`` and ``<!-- fuzz:end -->``); ``--docs-from FILE`` rewrites that
section from a kept result.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "hardening"))
from hardhub import HardHub  # noqa: E402
from test_schemathesis import EXCLUDED  # noqa: E402


def hub_answers(hub: HardHub, token: str) -> dict[str, int]:
    """Requests the hub answered, by status code, from its own Prometheus histogram."""
    text = httpx.get(f"{hub.url}/hub/metrics", headers={"Authorization": f"token {token}"}, timeout=30).text
    counts: dict[str, int] = {}
    # greedy: route labels are templates with braces ("/hub/api/users/{name}")
    for m in re.finditer(r"^hubkit_request_duration_seconds_count\{(.*)\} ([0-9.e+]+)$", text, re.M):
        code = re.search(r'code="(\d+)"', m.group(1))
        if code:
            counts[code.group(1)] = counts.get(code.group(1), 0) + int(float(m.group(2)))
    return counts


GOAL_REQUESTS = 50_000  # issue 12: 0 x 5xx and 0 schema violations in at least this many requests


def docs_section(result: dict[str, object], path: Path) -> str:
    """The docs section, every sentence computed from ``result``."""
    n = int(result["hub_requests"])  # type: ignore[call-overload]
    fivexx = int(result["hub_5xx"])  # type: ignore[call-overload]
    failures: dict[str, int] = result["failures"]  # type: ignore[assignment]
    violations = sum(failures.values())
    met = n >= GOAL_REQUESTS and fivexx == 0 and violations == 0
    codes: dict[str, int] = result["hub_answers_by_status"]  # type: ignore[assignment]
    load = result.get("loadavg_before") or [0.0]
    load_after = result.get("loadavg_after") or [0.0]
    lines = [
        "<!-- fuzz:begin -->",
        "## REST API under schemathesis (issue 12)",
        "",
        f"Run `{path.name}`, commit `{result['commit']}`, `benchmarks/fuzz/run.py --max-examples "
        f"{result['max_examples']} --seed {result['seed']} --workers {result.get('workers', 1)}` (this section is "
        "written by it): every schemathesis check but the excluded ones "
        f"({', '.join(result.get('excluded_checks') or [])}), positive and negative data, stateful links, against a "
        f"real hub behind hubkit-proxy on SQLite, calling as {result.get('caller') or 'the admin user boss (a token)'}; "
        "the hub itself counted what it answered "
        f"(`/hub/metrics`). {result['cores']} CPUs, load average {load[0]:.1f} at the start and "  # type: ignore[index]
        f"{load_after[0]:.1f} at the end, {float(result['wall_seconds']) / 60:.0f} minutes.",  # type: ignore[index,arg-type]
        "",
        "| measured | result |",
        "| --- | --- |",
        f"| requests the hub answered | {n:,} ({result['cases_generated']:,} schemathesis cases) |",
        f"| of which 5xx (the hub's count) | {fivexx} |",
        f"| schemathesis' exit status (its server-error check runs on every response) | {result['schemathesis_exit']} |",
        f"| failed checks (schema violations, accepted bad requests, ...) | {violations}"
        + (f": {', '.join(f'{k} x{v}' for k, v in failures.items())}" if failures else "")
        + " |",
        f"| tracebacks in the hub's log | {result['hub_tracebacks_logged']} |",
        "| answers by status | " + ", ".join(f"{c}: {k:,}" for c, k in sorted(codes.items())) + " |",
        "",
        f"Goal: 0 x 5xx and 0 schema violations in at least {GOAL_REQUESTS:,} requests: "
        + (
            "**met**."
            if met
            else "**not met** ("
            + "; ".join(
                x
                for x in (
                    f"{n:,} requests" if n < GOAL_REQUESTS else "",
                    f"{fivexx} x 5xx" if fivexx else "",
                    f"{violations} failed checks" if violations else "",
                )
                if x
            )
            + ")."
        ),
        *([f"Note kept with the result: {result['note']}"] if result.get("note") else []),
        "<!-- fuzz:end -->",
    ]
    return "\n".join(lines)


def write_docs(result: dict[str, object], path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from record import write_section

    write_section(
        ROOT / "docs" / "benchmarks.md",
        "<!-- fuzz:begin -->",
        "<!-- fuzz:end -->",
        docs_section(result, path),
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs-from", type=Path, help="only rewrite the docs section from this kept result")
    ap.add_argument("--max-examples", type=int, default=700)
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    ap.add_argument("--db", choices=["sqlite"], default="sqlite")
    ap.add_argument("--workers", type=int, default=1, help="schemathesis workers (concurrent requests)")
    args = ap.parse_args()
    if args.docs_from:
        write_docs(json.loads(args.docs_from.read_text()), args.docs_from)
        return 0
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="hubkit-fuzz-"))
    token, counter = secrets.token_hex(24), secrets.token_hex(24)
    services = "".join(
        f'\n[[services]]\nname = "{name}"\nadmin = true\napi_token = "{tok}"\n'
        for name, tok in (("fuzzer", token), ("counter", counter))
    )
    hub = HardHub(tmp, "sqlite:///hub.sqlite", extra=services).start()
    try:
        before = hub_answers(hub, counter)
        t0 = time.monotonic()
        proc = subprocess.run(
            [
                str(Path(sys.executable).parent / "schemathesis"),
                "run",
                f"{hub.url}/hub/api/openapi.json",
                "--checks",
                "all",
                "--exclude-checks",
                EXCLUDED,
                "--exclude-path-regex",
                "/shutdown$",  # POST /shutdown ends the hub under test (its own tests: tests/urls)
                "--mode",
                "all",
                "--max-examples",
                str(args.max_examples),
                "--seed",
                str(args.seed),
                "--workers",
                str(args.workers),
                "--header",
                f"Authorization: token {token}",
                "--request-timeout",
                "30",
                "--suppress-health-check",
                "all",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "NO_COLOR": "1"},
            check=False,
        )
        wall = time.monotonic() - t0
        after = hub_answers(hub, counter)
        tracebacks = hub.log_text().count("Traceback")
    finally:
        hub.stop()
    out = proc.stdout + proc.stderr
    answered = {c: after.get(c, 0) - before.get(c, 0) for c in sorted(set(after) | set(before))}
    answered = {c: n for c, n in answered.items() if n}
    m = re.search(r"(\d+) generated, (\d+) passed", out) or re.search(r"(\d+) generated", out)
    failures = re.findall(r"❌ (ST\d+ [^:]+): (\d+)", out)
    result = {
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": commit,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "cores": os.cpu_count(),
        "max_examples": args.max_examples,
        "seed": args.seed,
        "workers": args.workers,
        "caller": "the admin service 'fuzzer' (a token from the config)",
        "checks": "all",
        "excluded_checks": EXCLUDED.split(","),
        "schemathesis_exit": proc.returncode,
        "cases_generated": int(m.group(1)) if m else None,
        "failures": {name: int(n) for name, n in failures},
        "hub_answers_by_status": answered,
        "hub_requests": sum(answered.values()),
        "hub_5xx": sum(n for c, n in answered.items() if c.startswith("5")),
        "hub_tracebacks_logged": tracebacks,
        "wall_seconds": round(wall, 1),
        "schemathesis_summary": out[out.find("SUMMARY") - 40 :][-3000:] if "SUMMARY" in out else out[-3000:],
        # every failure schemathesis reported, with its reproduction (bounded)
        "schemathesis_failures": out[out.find("FAILURES") : out.find("SUMMARY")][:40_000]
        if "FAILURES" in out
        else "",
    }
    dest = ROOT / "benchmarks" / "results" / "fuzz"
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{result['when'].replace(':', '')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    write_docs(result, path)
    print(
        f"{result['hub_requests']} requests answered by the hub in {wall:.0f} s "
        f"({result['cases_generated']} schemathesis cases, seed {args.seed}, commit {commit}); "
        f"5xx: {result['hub_5xx']}; failed checks: {sum(result['failures'].values())}"
        f"{' ' + str(result['failures']) if result['failures'] else ''}; status codes: {answered}; "
        f"load average {load_before[0]:.1f} before, {result['loadavg_after'][0]:.1f} after; raw: {path.relative_to(ROOT)}"
    )
    return 0 if proc.returncode == 0 and result["hub_5xx"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
