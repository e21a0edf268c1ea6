"""What every benchmark run keeps beside its figures, and where: commit, load average, machine, tool versions.

``save(kind, result)`` writes the raw JSON of a run to ``benchmarks/results/<kind>/<UTC time>-<commit>.json``;
every run is kept (results are small), so a figure quoted anywhere can be traced to the run that produced it.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def commit() -> dict[str, Any]:
    """The checkout measured: its commit and whether the measured code differs from it."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "packages", "benchmarks")
    return {"sha": git("rev-parse", "HEAD") or "unknown", "dirty": bool(dirty)}


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "loadavg": list(os.getloadavg()),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        # code imported from elsewhere than the commit (a PYTHONPATH override) is part of what was measured
        "pythonpath": os.environ.get("PYTHONPATH", ""),
    }


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def save(kind: str, result: dict[str, Any]) -> Path:
    folder = RESULTS / kind
    folder.mkdir(parents=True, exist_ok=True)
    sha = str(result.get("commit", {}).get("sha", "unknown"))[:10]
    path = folder / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{sha}.json"
    path.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    return path


def write_section(doc: Path, begin: str, end: str, block: str) -> None:
    """Put ``block`` (which starts with ``begin`` and ends with ``end``) in place of that section of ``doc``,
    or append it when the document has no such section yet."""
    text = doc.read_text()
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    doc.write_text(text)
