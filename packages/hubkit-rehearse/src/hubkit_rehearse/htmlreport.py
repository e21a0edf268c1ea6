"""One self-contained HTML file: the report tables and the timeline PNG embedded as a data: URI, so it can be
mailed or attached to a ticket as is. Everything from the hub (error messages, names) is escaped."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from .report import Table

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:.25em .6em;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #ddd}.muted{color:#666}
"""


def _table(t: Table) -> str:
    out = [f"<h2>{html.escape(t.title)}</h2>"]
    if t.rows:
        out.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in t.header) + "</tr>")
        for row in t.rows:
            cells = []
            for i, c in enumerate(row):
                numeric = i > 0 and t.header[i] not in ("reason", "example", "phase", "value")
                cells.append(f"<td{' class=n' if numeric else ''}>{html.escape(c)}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</table>")
    out += [f'<p class="muted">{html.escape(n)}</p>' for n in t.notes]
    return "\n".join(out)


def write_html(path: Path, title: str, lines: list[str], tables: list[Table], png: Path | None) -> Path:
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>",
    ]
    if png is not None and png.exists():
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        parts.append(
            f'<img alt="timeline: users per phase and step latency over time" src="data:image/png;base64,{data}">'
        )
    parts += [_table(t) for t in tables]
    parts.append("</body></html>")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path
