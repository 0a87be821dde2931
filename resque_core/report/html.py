"""The HTML report: one self-contained file, CSS and Plotly's JavaScript inline (once), no
reference to the network (a Content-Security-Policy refuses any fetch); the charts stay
interactive offline. ``static=True`` is the page that :mod:`.pdf` prints."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from .blocks import _Bold, _Bullets, _Heading, _Para, _Table
from .sections import _blocks, _title

_CSS = """
:root { color-scheme: light; }
body { font-family: Inter, "Source Sans Pro", "Segoe UI", Arial, sans-serif; color: #1d232b;
  max-width: 1100px; margin: 0 auto; padding: 24px 32px 48px; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: .3em; }
h2 { font-size: 1.3em; border-bottom: 1px solid #d7dce2; padding-bottom: .2em; margin-top: 1.6em; }
h3 { font-size: 1.05em; margin-top: 1.2em; }
p.lead { font-size: 1.12em; background: #eef4fb; border-left: 4px solid #2f6db5;
  padding: .7em 1em; }
table { border-collapse: collapse; margin: .6em 0 1em; font-size: .9em; }
th, td { border: 1px solid #d7dce2; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f3f5f8; }
figure { margin: 1em 0 1.6em; break-inside: avoid; }
figcaption { color: #56606b; font-size: .9em; }
footer { color: #56606b; font-size: .85em; margin-top: 2em; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  table { font-size: 8pt; }
  h2, h3 { break-after: avoid; }
  tr, p.lead { break-inside: avoid; }
}
@page { size: A4; margin: 14mm; }
"""
# Everything is inline; the policy makes the browser refuse any fetch, should a future change or
# a crafted label ever try one.
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:"
)
_PRINT_WIDTH_PX = 680  # A4 less the page margins at 96 dpi


def _spans_html(spans: Sequence[str]) -> str:
    return "".join(
        f"<strong>{html.escape(s)}</strong>" if isinstance(s, _Bold) else html.escape(s)
        for s in spans
    )


def _html(doc: Mapping[str, Any], *, static: bool = False) -> str:
    from plotly.offline import get_plotlyjs

    blocks = _blocks(doc)
    body: list[str] = []
    n_charts = 0
    for b in blocks:
        if isinstance(b, _Heading):
            body.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
        elif isinstance(b, _Para):
            attr = ' class="lead"' if b.lead else ""
            body.append(f"<p{attr}>{_spans_html(b.spans)}</p>")
        elif isinstance(b, _Bullets):
            items = "".join(f"<li>{html.escape(i)}</li>" for i in b.items)
            body.append(f"<ul>{items}</ul>")
        elif isinstance(b, _Table):
            head = "".join(f"<th>{html.escape(c)}</th>" for c in b.columns)
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>" for r in b.rows
            )
            thead = f"<thead><tr>{head}</tr></thead>" if any(b.columns) else ""
            body.append(f"<table>{thead}<tbody>{rows}</tbody></table>")
        else:
            n_charts += 1
            fig = b.figure()
            if static:
                fig = fig.update_layout(width=_PRINT_WIDTH_PX)
            div = fig.to_html(
                full_html=False,
                include_plotlyjs=False,
                div_id=f"chart-{n_charts}",
                config={"displaylogo": False, "responsive": not static, "staticPlot": static},
            )
            caption = f"<figcaption>{html.escape(b.caption)}</figcaption>" if b.caption else ""
            body.append(f"<figure><h3>{html.escape(b.title)}</h3>{div}{caption}</figure>")
    plotly_js = f"<script>{get_plotlyjs()}</script>" if n_charts else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(_title(doc))}</title><style>{_CSS}</style>{plotly_js}</head>"
        f"<body>{''.join(body)}<footer>RESQUE model-reuse dashboard report; run "
        f"{html.escape(str(doc.get('run_id') or 'not stored'))}.</footer></body></html>\n"
    )
