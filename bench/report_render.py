"""Time to render one executive report, now against before (a git ref), in the same conditions.

Exports the ``--before`` ref's package (default: the commit before the
briefing, the parent of the one that added ``reports/history.py``) with
``git archive`` and seeds the same demo data (``--scale small``, fixed
``as_of``, same seed) twice into SQLite files, each by its own version's
``demo-data``, so each has its own schema: today's (before) and this one's,
which adds the report's covering indexes (``ix_*_report``). Then alternates
rounds between the code versions, each in a fresh process, rendering
``ws_acme``'s report for the week of 23 Nov 2026 ``--repeat`` times after one
warm-up. Prints the median wall and CPU seconds per report for figures +
HTML: before on its own schema (today's time), before on this schema (the
same database for both), now; and for now also the PDF alone (the product's
Chromium printer, one browser kept open; the CPU of the browser's and
Playwright's processes is counted with the run's) and figures + HTML + PDF,
with the load average. Figures taken while other work loads the machine are
not final: compare the CPU seconds, which load disturbs less.

    .venv/bin/python bench/report_render.py
    .venv/bin/python bench/report_render.py --before 30262e4 --repeat 20 --rounds 3
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEEK = "2026-11-23"
MEASURE = r"""
import json, statistics, sys, time
from datetime import UTC, datetime, timedelta
import psutil
from sqlalchemy import create_engine
from eclipse_exports.reports import collect_report, render_report
engine = create_engine(sys.argv[1])
repeat, pdf = int(sys.argv[2]), sys.argv[3] == "1"
start = datetime.fromisoformat(sys.argv[4]).replace(tzinfo=UTC)
if pdf:
    from eclipse_exports.reports.pdf import close_pdf_printer, render_pdf
me = psutil.Process()

def cpu() -> float:
    # This process's threads and its children's (the browser and Playwright's driver print the PDF).
    total = time.process_time()
    for child in me.children(recursive=True):
        try:
            times = child.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total

out = {"html": [], "pdf": []}
for i in range(repeat + 1):
    wall, used = time.perf_counter(), cpu()
    with engine.connect() as conn:
        data = collect_report(conn, "ws_acme", start, start + timedelta(days=7), start + timedelta(days=7, hours=6))
    html = render_report(data)
    html_times = (time.perf_counter() - wall, cpu() - used)
    if pdf:
        wall, used = time.perf_counter(), cpu()
        body, pages = render_pdf(html)
        pdf_times = (time.perf_counter() - wall, cpu() - used)
    if i:  # the first render warms imports, templates, fonts and starts the browser
        out["html"].append(html_times)
        if pdf:
            out["pdf"].append(pdf_times)
            out["pages"] = pages
if pdf:
    wall, used = time.perf_counter(), cpu()
    close_pdf_printer()
    out["browser_close"] = (time.perf_counter() - wall, cpu() - used)
print(json.dumps(out))
"""


SEED = r"""
import sys
from datetime import UTC, datetime
from sqlalchemy import create_engine
from eclipse_exports.source.demo_data import load_demo_data
load_demo_data(create_engine(sys.argv[1]), "small", as_of=datetime(2026, 12, 7, tzinfo=UTC))
"""


def _export(ref: str, into: Path) -> Path:
    archive = into / "before.tar"
    subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), ref, "eclipse_exports"], cwd=ROOT,
                   check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "before", filter="data")
    return into / "before"


def _measure(code: Path, url: str, repeat: int, pdf: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code)}
    result = subprocess.run([sys.executable, "-c", MEASURE, url, str(repeat), "1" if pdf else "0", WEEK], env=env,
                            cwd=code, capture_output=True, text=True, check=True, timeout=1800)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default=None, help="git ref of 'before' (default: the commit before the briefing)")
    parser.add_argument("--repeat", type=int, default=10, help="renders per round (after one warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of before and now")
    args = parser.parse_args()
    added = subprocess.run(["git", "log", "--diff-filter=A", "--format=%H", "--", "eclipse_exports/reports/history.py"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    before_ref = args.before or f"{added[-1]}^"
    sys.path.insert(0, str(ROOT))
    from sqlalchemy import create_engine

    from eclipse_exports.source.demo_data import load_demo_data

    with tempfile.TemporaryDirectory(prefix="report-render-") as folder:
        work = Path(folder)
        url, before_url = f"sqlite:///{work / 'demo.db'}", f"sqlite:///{work / 'before.db'}"
        load_demo_data(create_engine(url), "small", as_of=datetime(2026, 12, 7, tzinfo=UTC))
        before_code = _export(before_ref, work)
        subprocess.run([sys.executable, "-c", SEED, before_url], env={**os.environ, "PYTHONPATH": str(before_code)},
                       cwd=before_code, check=True, timeout=600)
        loads = [os.getloadavg()]
        samples: dict[str, list] = {"before_html": [], "before_same_html": [], "now_html": [], "now_pdf": []}
        pages = None
        for _ in range(args.rounds):
            samples["before_html"] += _measure(before_code, before_url, args.repeat, False)["html"]
            samples["before_same_html"] += _measure(before_code, url, args.repeat, False)["html"]
            now = _measure(ROOT, url, args.repeat, True)
            samples["now_html"] += now["html"]
            samples["now_pdf"] += now["pdf"]
            pages = now.get("pages")
            loads.append(os.getloadavg())

    def median(name: str, index: int) -> float:
        return statistics.median(t[index] for t in samples[name])

    total_wall = statistics.median(h[0] + p[0] for h, p in zip(samples["now_html"], samples["now_pdf"], strict=True))
    total_cpu = statistics.median(h[1] + p[1] for h, p in zip(samples["now_html"], samples["now_pdf"], strict=True))
    rows = [("before: figures + HTML", median("before_html", 0), median("before_html", 1)),
            ("before, on this schema", median("before_same_html", 0), median("before_same_html", 1)),
            ("now: figures + HTML", median("now_html", 0), median("now_html", 1)),
            ("now: PDF from the HTML", median("now_pdf", 0), median("now_pdf", 1)),
            ("now: figures + HTML + PDF", total_wall, total_cpu)]
    base_wall, base_cpu = rows[0][1], rows[0][2]
    print(f"ws_acme, week of {WEEK}, demo data small; before = {before_ref}; "
          f"{args.rounds} rounds × {args.repeat} renders; PDF pages: {pages}")
    print(f"{'':36}{'wall s':>9}{'CPU s':>9}{'× before (CPU)':>16}  (× before: before on its own schema)")
    for name, wall, cpu in rows:
        print(f"{name:36}{wall:9.3f}{cpu:9.3f}{cpu / base_cpu:16.2f}")
    print(f"(wall × before: HTML {rows[2][1] / base_wall:.2f}, with PDF {total_wall / base_wall:.2f}; "
          f"on one schema, CPU × before {rows[2][2] / rows[1][2]:.2f})")
    shown = [tuple(round(x, 2) for x in load) for load in loads]
    print(f"load average (1, 5, 15 min) before and after each round: {shown} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
