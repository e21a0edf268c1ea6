"""The import's report, for people (a table, the changes, what was skipped and why) or as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from .actions import KINDS, Plan


def as_dict(plan: Plan, *, dry_run: bool) -> dict[str, Any]:
    return {
        "source": plan.source,
        "jupyterhub_schema": plan.revision,
        "dry_run": dry_run,
        "counts": {k: asdict(plan.tally[k]) for k in KINDS},
        "changes": [a.describe() for a in plan.actions],
        "skipped": [asdict(s) for s in plan.skipped],
        "notes": list(plan.notes),
    }


def as_json(plan: Plan, *, dry_run: bool) -> str:
    return json.dumps(as_dict(plan, dry_run=dry_run), indent=2)


def as_text(plan: Plan, *, dry_run: bool) -> str:
    lines = [f"JupyterHub database {plan.source} (schema {plan.revision or 'unknown'})"]
    if plan.actions:
        lines.append("would change:" if dry_run else "changed:")
        lines += [f"  {a.describe()}" for a in plan.actions]
    else:
        lines.append("nothing to change: hubkit already holds everything importable")
    lines.append(f"{'':9}{'created':>9}{'updated':>9}{'unchanged':>11}{'skipped':>9}")
    for kind in KINDS:
        t = plan.tally[kind]
        lines.append(f"{kind:9}{t.created:>9}{t.updated:>9}{t.unchanged:>11}{t.skipped:>9}")
    if plan.skipped:
        lines.append("skipped:")
        lines += [f"  {s.kind} {s.what}: {s.reason}" for s in plan.skipped]
    if plan.notes:
        lines.append("notes:")
        lines += [f"  {n}" for n in plan.notes]
    if dry_run:
        lines.append("dry run: nothing was written")
    return "\n".join(lines)
