"""The report as a PDF: the same HTML page laid out for A4 by WeasyPrint (with Debian's Pango).

Why WeasyPrint rather than Chromium: it is a Python library (no browser
process per render, nothing to keep alive in a run worker), it reads the
page's own print styles (``@page`` and ``@media print`` in
``templates/executive_report.html``), and the product already needs no
browser; Chromium stays a test tool.

What keeps it fast (see docs/benchmarks.md): one ``FontConfiguration`` per
process, reused by every render (Fontconfig's font list is built once); the
page's print styles use floats and fixed-layout tables (WeasyPrint's grid,
inline-block, multi-column and auto table layouts cost several times more);
and no external resource is ever fetched (the page has none; the URL fetcher
refuses anything anyway).
"""

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from weasyprint.text.fonts import FontConfiguration

PDF_CONTENT_TYPE = "application/pdf"


@cache
def _font_config() -> "FontConfiguration":
    # WeasyPrint loads Pango through cffi at import: only report runs pay for it, once per process.
    from weasyprint.text.fonts import FontConfiguration

    return FontConfiguration()


def _no_fetch(url: str, timeout: int = 10, ssl_context: object = None) -> dict:
    raise ValueError(f"the report fetches nothing; refused {url[:80]!r}")


def render_pdf(html: str) -> tuple[bytes, int]:
    """``html`` (the report page) as PDF bytes and its page count. Raises WeasyPrint's errors."""
    from weasyprint import HTML

    document = HTML(string=html, url_fetcher=_no_fetch).render(font_config=_font_config())
    return document.write_pdf(), len(document.pages)
