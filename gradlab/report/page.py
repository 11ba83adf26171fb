"""report.html: one self-contained page (inline style, images embedded as data: URIs, no scripts,
no reference outside the file) with each run's configuration, the summary tables and every figure
with its caption."""

from __future__ import annotations

import base64
import html
import json
from datetime import datetime
from typing import Any, Sequence

STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.9em}th,td{border:1px solid #ccc;padding:3px 8px;
text-align:left}th{background:#f2f2f2}figure{margin:1.5em 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:0.9em;color:#444;max-width:900px}pre{background:#f7f7f7;padding:0.6em;overflow-x:auto;
font-size:0.8em}code{font-size:0.9em}"""


def cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure(png: bytes, caption: str, files: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption[:80])}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)} <code>{html.escape(files)}</code></figcaption></figure>")


def render(title: str, sections: Sequence[dict], versions: dict) -> str:
    """sections: {"heading", "intro", "tables": [(columns, rows)], "figures": [(png, caption, files)],
    "config": dict}; everything escaped, nothing fetched."""
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>Written {datetime.now():%Y-%m-%d %H:%M} by gradlab {html.escape(str(versions.get('gradlab')))} "
             f"(torch {html.escape(str(versions.get('torch')))}). Every figure sits beside this page as PNG and PDF "
             "with a JSON file of the numbers drawn.</p>"]
    for s in sections:
        parts.append(f"<h2>{html.escape(s['heading'])}</h2>")
        if s.get("intro"):
            parts.append(f"<p>{html.escape(s['intro'])}</p>")
        parts += [table(columns, rows) for columns, rows in s.get("tables", [])]
        parts += [figure(*f) for f in s.get("figures", [])]
        if s.get("config"):
            parts.append("<details><summary>configuration</summary><pre>"
                         f"{html.escape(json.dumps(s['config'], indent=1, default=str))}</pre></details>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")
