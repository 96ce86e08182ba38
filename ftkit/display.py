"""Tables for notebooks and reports: small, escaped HTML, no pandas needed."""
from __future__ import annotations

import html


def html_table(rows: list[dict], columns: list[str] | None = None, caption: str = "") -> str:
    """An HTML table of ``rows`` (dicts); values are escaped, floats shown with 4 significant digits.

    >>> html_table([{"a": 1, "b": "<x>"}]).count("&lt;x&gt;")
    1
    """
    columns = columns or (list(rows[0]) if rows else [])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c, '')))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f'<table class="ftkit-table">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def show_table(rows: list[dict], columns: list[str] | None = None, caption: str = "") -> None:
    """Display a table in a notebook (plain text outside IPython)."""
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
        if get_ipython() is not None:
            display(HTML(html_table(rows, columns, caption)))
            return
    except ImportError:
        pass
    columns = columns or (list(rows[0]) if rows else [])
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(_fmt(row.get(c, "")) for c in columns))


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    return str(value)
