"""CPU regression guard: measure each guard's rows and fail when one grew more than the baseline's tolerance.

    python benchmarks/guard/run.py              # all guards; exit 1 on a regression
    python benchmarks/guard/run.py --only proxy   # or --only hub
    python benchmarks/guard/run.py --update     # write this run's values into benchmarks/baseline.json

A guard is a module in this folder with ``measure() -> list[rows.Row]`` whose row names start with its key in
GUARDS (e.g. ``proxy.small_get_cpu_us``, ``hub.get_user_cpu_ms``). A guard whose rows fail is measured once
more and each row keeps the smaller of its two figures: a regression in the code shows both times, a burst of
foreign load on a shared machine rarely does. ``python3 dev.py test`` runs every guard before the test folders
(about two and a half minutes). Rows
in the baseline that this run did not measure are reported as such and do not fail the run; a measured row
missing from the baseline fails, so that new rows get a committed baseline. Every run's raw JSON is kept
under benchmarks/results/guard/.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import record  # noqa: E402
from rows import Row, load_baseline, save_baseline  # noqa: E402

GUARDS = {"hub": "hub", "proxy": "proxy"}  # key (row-name prefix) -> module in this folder


def compare(rows: list[Row], baseline: dict[str, Any]) -> tuple[list[str], bool]:
    tol = float(baseline.get("tolerance", 0.3))
    lines = [f"{'row':32} {'baseline':>10} {'now':>10} {'change':>8}  verdict", "-" * 72]
    ok = True
    for row in rows:
        base = baseline["rows"].get(row.name)
        if base is None:
            lines.append(
                f"{row.name:32} {'-':>10} {row.value:10.1f} {'':>8}  FAIL: no baseline (run --update)"
            )
            ok = False
            continue
        change = row.value / float(base["value"]) - 1
        bad = change > tol
        ok = ok and not bad
        verdict = f"FAIL: more than +{tol:.0%}" if bad else "ok"
        lines.append(
            f"{row.name:32} {base['value']:10.1f} {row.value:10.1f} {change:+8.0%}  {verdict}  ({row.unit})"
        )
    measured = {r.name for r in rows}
    for name in sorted(set(baseline["rows"]) - measured):
        lines.append(
            f"{name:32} {baseline['rows'][name]['value']:10.1f} {'-':>10} {'':>8}  not measured in this run"
        )
    return lines, ok


def _smaller(first: Row, second: Row | None) -> Row:
    if second is None or second.value >= first.value:
        return first
    second.samples = first.samples + second.samples
    return second


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", action="append", default=[], help="guard key(s) to run (default: all)")
    p.add_argument("--update", action="store_true", help="write this run's values as the new baseline rows")
    args = p.parse_args()
    keys = args.only or list(GUARDS)
    started = time.monotonic()
    rows: list[Row] = []
    for key in keys:
        rows += importlib.import_module(GUARDS[key]).measure()
    baseline = load_baseline()
    lines, ok = compare(rows, baseline)
    retried: list[str] = []
    if not ok and not args.update:
        print("\n".join(lines))
        retried = [
            k for k in keys if not compare([r for r in rows if r.name.startswith(k + ".")], baseline)[1]
        ]
        print(f"measuring {', '.join(retried)} once more; each row keeps the smaller figure", flush=True)
        again = {r.name: r for k in retried for r in importlib.import_module(GUARDS[k]).measure()}
        rows = [_smaller(r, again.get(r.name)) for r in rows]
        lines, ok = compare(rows, baseline)
    print("\n".join(lines))
    result = {
        "kind": "guard",
        "commit": record.commit(),
        "machine": record.machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": time.monotonic() - started,
        "tolerance": baseline.get("tolerance", 0.3),
        "rows": [r.as_dict() for r in rows],
        "measured_twice": retried,
        "passed": ok,
    }
    print(f"raw results: {record.save('guard', result)}  ({result['seconds']:.0f} s, load {record.load1()})")
    if args.update:
        for r in rows:
            baseline["rows"][r.name] = {
                "value": round(r.value, 2),
                "unit": r.unit,
                "what": r.what,
                "commit": result["commit"]["sha"],
                "measured": result["started"],
                "loadavg": result["machine"]["loadavg"][0],
            }
        save_baseline(baseline)
        print(f"baseline updated: {', '.join(r.name for r in rows)}")
        return 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
