"""HTML for notebooks: the tables every ``_repr_html_`` of the package is built from.

Jupyter shows an object's ``_repr_html_()`` instead of its ``repr``. The index, its manifest,
search results, ingest and doctor reports and evaluation results all build their HTML here, so
every one of them escapes its text (chunk text and file names are user data: a ``<script>`` in a
document must show as text, never run) and looks alike.

>>> page = table([("<b>", 0.5)], head=("key", "value"), align="lr")
>>> page.split("<tr>")[2].removesuffix("</tbody></table>")
"<td style='text-align:left'>&lt;b&gt;</td><td style='text-align:right'>0.5</td></tr>"
>>> snippet("  富士山は   日本一の山。  " * 2, limit=10)
'富士山は 日本一の…'
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

__all__ = ["SNIPPET_CHARS", "Html", "escape", "snippet", "table"]

SNIPPET_CHARS = 200
"""How much of a chunk's text a results table shows; a chunk can be thousands of characters."""

_ALIGN = {"l": "left", "r": "right"}


class Html(str):
    """Text that is HTML already (a ``<b>``, a ``<code>``): :func:`escape` leaves it as it is."""

    __slots__ = ()


def escape(value: object) -> str:
    """``value`` as HTML text: escaped, unless it is :class:`Html`."""
    return value if isinstance(value, Html) else html.escape(str(value))


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """``text`` on one line (whitespace runs become one space), cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def table(
    rows: Iterable[Sequence[object]],
    *,
    head: Sequence[object] = (),
    caption: object = "",
    align: str = "",
    row_head: bool = False,
) -> Html:
    """An HTML table; every cell is escaped unless it is :class:`Html`.

    Args:
        rows: The rows, one value per column.
        head: Column titles (no header row when empty).
        caption: A caption above the table.
        align: One letter per column, ``"l"`` (left, the default for missing letters) or
            ``"r"`` (right, for numbers), e.g. ``"lrr"``.
        row_head: The first cell of each row is a row title (``<th>``).

    Returns:
        The table, as :class:`Html`.
    """

    def cell(column: int, value: object) -> str:
        tag = "th" if row_head and column == 0 else "td"
        side = _ALIGN[align[column]] if column < len(align) else "left"
        return f"<{tag} style='text-align:{side}'>{escape(value)}</{tag}>"

    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    titles = "".join(f"<th>{escape(title)}</th>" for title in head)
    thead = f"<thead><tr>{titles}</tr></thead>" if head else ""
    body = "".join(
        "<tr>" + "".join(cell(i, value) for i, value in enumerate(row)) + "</tr>" for row in rows
    )
    return Html(f"<table>{cap}{thead}<tbody>{body}</tbody></table>")
