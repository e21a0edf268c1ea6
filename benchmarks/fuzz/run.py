"""The long schemathesis run of docs/benchmarks.md: every conformance check, positive and negative modes, against
a real hub behind hubkit-proxy. The hub's own /hub/metrics counts what it answered (by status code), so the
figures do not depend on schemathesis' reporting.

Both tokens are admin services' from the config: a user's token can be revoked by the requests being generated
(``DELETE /users/{name}/tokens/{id}``), after which the rest of a run would only meet 401/403 and the final
count could not be read; a config service's token cannot be. The fuzzer knows only its own.

    python benchmarks/fuzz/run.py --max-examples 700 [--seed N] [--workers N]

Writes benchmarks/results/fuzz/<UTC time>.json and prints a summary computed from it.
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
    for m in re.finditer(r"^hubkit_request_duration_seconds_count\{([^}]*)\} ([0-9.e+]+)$", text, re.M):
        code = re.search(r'code="(\d+)"', m.group(1))
        if code:
            counts[code.group(1)] = counts.get(code.group(1), 0) + int(float(m.group(2)))
    return counts


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-examples", type=int, default=700)
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    ap.add_argument("--db", choices=["sqlite"], default="sqlite")
    ap.add_argument("--workers", type=int, default=1, help="schemathesis workers (concurrent requests)")
    args = ap.parse_args()
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
