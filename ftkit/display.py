"""Tables for notebooks and reports: small, escaped HTML, no pandas needed."""
from __future__ import annotations

import html
from pathlib import Path

EMPTY = "none"  # what an empty table shows



def html_table(rows: list[dict], columns: list[str] | None = None, caption: str = "") -> str:
    """An HTML table of ``rows`` (dicts); values are escaped, floats shown with 4 significant digits.

    >>> html_table([{"a": 1, "b": "<x>"}]).count("&lt;x&gt;")
    1
    >>> html_table([], caption="Regressions (0)")
    '<table class="ftkit-table"><tbody><tr><td class="ftkit-empty">Regressions (0): <i>none</i></td></tr></tbody></table>'
    """
    columns = columns or (list(rows[0]) if rows else [])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c, '')))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    if not rows:  # say so: an empty table would render as a bare caption wrapped to the width of nothing
        if not columns and caption:
            cap, body = "", f'<tr><td class="ftkit-empty">{html.escape(caption)}: <i>{EMPTY}</i></td></tr>'
        else:
            body = f'<tr><td class="ftkit-empty" colspan="{max(1, len(columns))}"><i>{EMPTY}</i></td></tr>'
    thead = f"<thead><tr>{head}</tr></thead>" if columns else ""
    return f'<table class="ftkit-table">{cap}{thead}<tbody>{body}</tbody></table>'


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
    if caption:
        print(caption)
    print(" | ".join(columns))
    if not rows:
        print(EMPTY)
    for row in rows:
        print(" | ".join(_fmt(row.get(c, "")) for c in columns))


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def embed_figures_as_png() -> None:
    """Make IPython display every matplotlib Figure as an embedded PNG, whatever backend is active.

    Without this, a Figure displayed under a non-inline backend (e.g. after some code called
    ``matplotlib.use("Agg")``) shows as the text ``<Figure size 1110x360 with 1 Axes>``. The formatter is
    registered by type name, so matplotlib is not imported here and no backend is forced on the kernel.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    from functools import partial

    from IPython.core.pylabtools import print_figure

    shell.display_formatter.formatters["image/png"].for_type_by_name(
        "matplotlib.figure", "Figure", partial(print_figure, fmt="png", base64=True, bbox_inches="tight"))


def show_png(path) -> None:
    """Display a saved PNG file inline (the exact file kept as evidence), or print its path outside IPython."""
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
        if get_ipython() is not None:
            alt = Path(path).stem.replace("_", " ")  # report.html's <img alt>: the figure's name
            display(Image(data=Path(path).read_bytes(), format="png"), metadata={"image/png": {"alt": alt}})
            return
    except ImportError:
        pass
    print(f"figure: {path}")
