"""The report as a PDF: the same HTML page printed to A4 by headless Chromium (Debian's ``chromium``) through
Playwright.

Why Chromium rather than WeasyPrint (which made the PDF before): on this
project's benchmark (``bench/report_render.py``, ws_acme's demo week, 3 A4
pages) WeasyPrint took about 0.55 CPU-s per report in the run process and
Chromium about 0.14 CPU-s, its own processes included: the PDF was most of a
report's cost and the weekly fan-out's limit. Chromium also lays the page out
as the browsers that open the HTML do, and the project already installs it
(bootstrap, deploy/install.sh, the image).

One browser per process, started on the first PDF and reused for every report
after it (a report run prints up to ``ECLIPSE_REPORTS_PER_RUN`` of them). A
run ends with :func:`release_pdf_printer`: a fresh run process closes the
browser there; a warm run worker (:func:`keep_pdf_printer_warm`, called as
its child starts) keeps it ``ECLIPSE_PDF_WARM_SECONDS`` (120) for its next
report run, since starting one costs about 2 CPU-s, then closes it, so an
idle worker holds none for long; :func:`close_pdf_printer` closes it at once
(the child's exit). Playwright's sync API runs on a thread of the
printer's own, so a caller that already drives a browser on its thread (a
test, say) can print too. The page is printed with JavaScript off and every
network request refused: it is the project's own autoescaped HTML and fetches
nothing. Chromium runs without its sandbox (``--no-sandbox``: a run worker may
be root in a container, where the sandbox cannot start); that is safe only
because of the two previous guarantees.
"""

import os
import re
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from eclipse_exports.config import Settings

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

PDF_CONTENT_TYPE = "application/pdf"
# A page object in Chromium's (Skia's) PDF: "/Type /Page", not "/Type /Pages".
_PAGE_OBJECT = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-extensions"]
_shared: "PdfPrinter | None" = None
_shared_lock = threading.Lock()
_warm_seconds = 0.0  # how long release_pdf_printer keeps the browser (keep_pdf_printer_warm)
_idle_timer: threading.Timer | None = None


def chromium_executable(configured: str | None = None) -> str:
    """The Chromium to print with: ``configured`` (``ECLIPSE_CHROMIUM_PATH``), else ``chromium`` on PATH.

    Raises ``RuntimeError`` naming what to install when there is none.
    """
    path = configured or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path or not shutil.which(path):
        raise RuntimeError(f"no Chromium to print the report's PDF ({configured or 'chromium on PATH'}): install "
                           "Debian's chromium (scripts/bootstrap.sh and deploy/install.sh do), set "
                           "ECLIPSE_CHROMIUM_PATH, or turn the PDF off with ECLIPSE_REPORT_PDF=false")
    return path


class PdfPrinter:
    """A headless Chromium that prints HTML pages to A4 PDFs, started on first use and kept for the next page.

    Safe to call from any thread: Playwright runs on the printer's own thread and pages print one at a time.
    ``executable`` defaults to :func:`chromium_executable` of ``ECLIPSE_CHROMIUM_PATH``.
    """

    def __init__(self, executable: str | None = None) -> None:
        self.executable = executable
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pdf-printer")
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._page: Page | None = None
        self.printing = 0  # pages being printed or waiting for the printer's thread
        self.last_used = time.monotonic()

    def _open(self) -> "Page":
        if self._page is not None and self._browser is not None and self._browser.is_connected():
            return self._page
        self._close()
        from playwright.sync_api import sync_playwright

        executable = chromium_executable(self.executable or Settings.from_env().chromium_path)
        self._playwright = sync_playwright().start()
        try:
            self._browser = self._playwright.chromium.launch(executable_path=executable, args=_ARGS)
            context = self._browser.new_context(java_script_enabled=False)
            context.route("**/*", lambda route: route.abort())
            self._page = context.new_page()
        except BaseException:
            self._close()
            raise
        return self._page

    def _print(self, html: str) -> tuple[bytes, int]:
        page = self._open()
        page.set_content(html, wait_until="load", timeout=60_000)
        pdf = page.pdf(prefer_css_page_size=True, print_background=True)
        return pdf, len(_PAGE_OBJECT.findall(pdf))

    def _close(self) -> None:
        browser, playwright = self._browser, self._playwright
        self._page = self._browser = self._playwright = None
        try:
            if browser is not None:
                browser.close()
        finally:
            if playwright is not None:
                playwright.stop()

    def print_pdf(self, html: str) -> tuple[bytes, int]:
        """``html`` (a whole page with its own ``@page`` size and print styles) as PDF bytes and its page count.

        Raises ``RuntimeError`` without a Chromium and Playwright's errors (``playwright.sync_api.Error``, its
        ``TimeoutError`` after 60 s) when printing fails; a browser that died is started again on the next call.
        """
        return self._thread.submit(self._print, html).result()

    def close(self) -> None:
        """Close the browser and Playwright's driver (nothing is left running); the next page starts them again."""
        self._thread.submit(self._close).result()

    def __enter__(self) -> "PdfPrinter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def render_pdf(html: str) -> tuple[bytes, int]:
    """``html`` (the report page) as PDF bytes and its page count, printed by the process's shared
    :class:`PdfPrinter`. Raises what :meth:`PdfPrinter.print_pdf` raises."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = PdfPrinter()
        printer = _shared
        printer.printing += 1
    try:
        return printer.print_pdf(html)
    finally:
        with _shared_lock:
            printer.printing -= 1
            printer.last_used = time.monotonic()


def close_pdf_printer() -> None:
    """Close the process's shared browser at once, if :func:`render_pdf` started one."""
    global _shared
    with _shared_lock:
        printer, _shared = _shared, None
    if printer is not None:
        printer.close()


def keep_pdf_printer_warm(seconds: float) -> None:
    """Make :func:`release_pdf_printer` keep the browser ``seconds`` after a run (0: close it at once).

    For a process that runs many reports, one after another: a warm run worker's child.
    """
    global _warm_seconds
    _warm_seconds = max(0.0, float(seconds))


def release_pdf_printer() -> None:
    """The end of a report run: close the shared browser now, or, in a warm process (:func:`keep_pdf_printer_warm`),
    once it has printed nothing for the warm seconds (a daemon timer; a page printed meanwhile keeps it)."""
    global _idle_timer
    if _warm_seconds <= 0:
        close_pdf_printer()
        return
    with _shared_lock:
        if _shared is None:
            return
        if _idle_timer is not None:
            _idle_timer.cancel()
        _idle_timer = threading.Timer(_warm_seconds, _close_if_idle)
        _idle_timer.daemon = True
        _idle_timer.start()


def _close_if_idle() -> None:
    global _shared
    with _shared_lock:
        printer = _shared
        if printer is None or printer.printing or time.monotonic() - printer.last_used < _warm_seconds - 0.05:
            return  # printing again: the run that uses it releases it again at its end
        _shared = None
    printer.close()


def _forget_after_fork() -> None:
    # A forked child (a Celery prefork child) cannot use its parent's browser, printer thread or timer.
    global _shared, _shared_lock, _idle_timer, _warm_seconds
    _shared, _shared_lock, _idle_timer, _warm_seconds = None, threading.Lock(), None, 0.0


os.register_at_fork(after_in_child=_forget_after_fork)
