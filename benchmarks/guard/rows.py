"""The unit a guard measures and the baseline file's format (kept tiny so anyone can add rows by hand).

``benchmarks/baseline.json``::

    {
      "format": 1,
      "tolerance": 0.3,                       # a row fails when measured > value * (1 + tolerance)
      "rows": {
        "<guard>.<name>": {                   # e.g. "proxy.small_get_cpu_us"; the prefix names the guard module
          "value": 71.5,                      # lower is better (CPU time per unit of work)
          "unit": "us of proxy CPU per request",
          "what": "one sentence: what load, which process, how counted",
          "commit": "<sha of the run that set it>",
          "measured": "<UTC time>", "loadavg": 1.2
        }
      }
    }

Rows hold CPU time, not wall time: CPU per request moves far less than throughput when other programs share
the machine.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BASELINE = Path(__file__).resolve().parents[1] / "baseline.json"
FORMAT = 1


@dataclass
class Row:
    name: str  # "<guard>.<name>"
    value: float  # median of the samples; lower is better
    unit: str
    what: str
    samples: list[float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_baseline(path: Path = BASELINE) -> dict[str, Any]:
    if not path.exists():
        return {"format": FORMAT, "tolerance": 0.3, "rows": {}}
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise SystemExit(f"{path}: unknown format {data.get('format')!r} (this runner reads {FORMAT})")
    return dict(data)


def save_baseline(data: dict[str, Any], path: Path = BASELINE) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
