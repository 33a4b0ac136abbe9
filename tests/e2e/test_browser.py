"""The product as the README starts it, seen in a real browser.

`eclipse-exports dev` runs for real (its own Redis, SeaweedFS and `dagster dev`, on free ports, in a
data folder of its own); a second shell `source`s the env file it writes and requests exports with
the CLI; headless Debian chromium, driven by Playwright, finds the run by its `eclipse/job_id` tag,
opens it and the partition's materialization, and reads success, row count, scope and the passing
checks; then the queue's health asset, its plots and its checks. Screenshots land in
tests/artifacts/browser/, beside the other tests' artifacts.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from eclipse_exports.local.services import free_port

ROOT = Path(__file__).resolve().parents[2]
EXPORTS = Path(sys.executable).parent / "eclipse-exports"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "browser"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
pytestmark = pytest.mark.e2e


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"`dev` exited with {proc.returncode} while waiting for {what}:\n"
                                 + (log.read_text()[-4000:] if log else ""))
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="module")
def product(tmp_path_factory):
    data = tmp_path_factory.mktemp("product")
    ui = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ECLIPSE_", "AWS_", "DAGSTER_"))}
    env["ECLIPSE_DATA_DIR"] = str(data)
    log = data / "dev.log"
    with open(log, "wb") as out:
        dev = subprocess.Popen([str(EXPORTS), "dev", "--port", str(ui), "--redis-port", str(free_port()),
                                "--s3-port", str(free_port()), "--scale", "tiny"],
                               cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                               # as `eclipse-exports dev &` in a script starts it: SIGINT ignored, yet kill -INT
                               # must stop it
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        _wait(lambda: (data / "env.sh").exists() and _answers(f"http://127.0.0.1:{ui}/server_info"), 240,
              "the Dagster UI", dev, log)
        yield {"data": data, "ui": f"http://127.0.0.1:{ui}", "env": env, "log": log}
    finally:
        family = psutil.Process(dev.pid).children(recursive=True) if dev.poll() is None else []
        # Stopped as docs/local.md says, `kill -INT PID`: the signal reaches `dev` alone, not its process group.
        dev.send_signal(signal.SIGINT)
        ignored = ""
        try:
            dev.wait(timeout=120)
        except subprocess.TimeoutExpired:
            # What `dev` did with the signal (blocked, ignored, caught: /proc masks) and what it said last.
            masks = [line for line in Path(f"/proc/{dev.pid}/status").read_text().splitlines()
                     if line.startswith(("SigBlk", "SigIgn", "SigCgt", "SigPnd", "ShdPnd", "State"))]
            ignored = f"{masks}; log: {log.read_text(errors='replace')[-1500:]}"
            dev.kill()
        time.sleep(2)
        left = [p for p in family if _alive(p)]
        for process in left:
            process.kill()
        assert dev.returncode is not None and dev.returncode != -signal.SIGKILL, f"`dev` ignored SIGINT: {ignored}"
        assert not left, f"left running after `dev` stopped: {[p.pid for p in left]}"


def shell(product, command: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """A second shell, as the README has it: `source` the env file, then the CLI."""
    return subprocess.run(["bash", "-c", f"source {product['data'] / 'env.sh'} && {command}"], cwd=ROOT,
                          env={"PATH": f"{EXPORTS.parent}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")},
                          capture_output=True, text=True, timeout=timeout)


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_a_requested_export_is_seen_in_the_dagster_ui(product):
    second = subprocess.run([str(EXPORTS), "dev", "--port", str(free_port())], cwd=ROOT, env=product["env"],
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 2 and "is already running on the data folder" in second.stderr

    # The full export first, then the filtered one: the partition page shows observations recorded after the
    # latest materialization, so the filtered export must end after the full one (sent together, the smaller
    # one could end first).
    sent = shell(product, "eclipse-exports request --workspace ws_acme --user usr_acme_analyst --resource alerts "
                          "--format csv")
    assert sent.returncode == 0, sent.stderr
    job_id = sent.stdout.strip()
    watched = shell(product, f"eclipse-exports status {job_id} --watch --timeout 240", timeout=300)
    assert watched.returncode == 0, watched.stdout + watched.stderr + product["log"].read_text()[-3000:]
    sent = shell(product, "eclipse-exports request --file examples/requests/alerts-json-filtered.json")
    assert sent.returncode == 0, sent.stderr
    filtered_id = sent.stdout.strip()
    watched = shell(product, f"eclipse-exports status {filtered_id} --watch --timeout 120", timeout=200)
    assert watched.returncode == 0, watched.stdout + watched.stderr + product["log"].read_text()[-3000:]
    status = json.loads(shell(product, f"eclipse-exports status {job_id} --json").stdout)
    rows = int(status["rowCount"])
    assert status["status"] == "completed" and rows > 0
    listed = shell(product, "eclipse-exports jobs --workspace ws_acme").stdout
    assert job_id in listed and filtered_id in listed

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1800, "height": 1200})
        page.set_default_timeout(120_000)  # a loaded 2-core machine serves the UI slowly
        expect.set_options(timeout=120_000)
        # Dagster greets a new browser with a newsletter dialog, whenever it likes; a new user skips it.
        skip = page.get_by_role("button", name="Skip")
        page.add_locator_handler(skip, lambda button: button.click())
        ui = product["ui"]
        try:
            look_at_the_export(page, ui, job_id, status, rows)
            look_at_the_queue(page, ui)
        except Exception:
            shot(page, "failure")
            raise
        finally:
            browser.close()


def look_at_the_export(page: Page, ui: str, job_id: str, status: dict, rows: int) -> None:
    """What a new user does in the UI: find the run by its tag, open it, then the partition and its checks."""
    page.goto(f"{ui}/runs?q%5B0%5D=tag%3Aeclipse%2Fjob_id%3D{job_id}")
    run_link = page.locator(f'a[href="/runs/{status["runId"]}"]').first
    expect(run_link).to_be_visible()
    expect(page.get_by_text(f"eclipse/job_id: {job_id}")).to_be_visible()
    expect(page.get_by_text("eclipse/scope: full")).to_be_visible()
    expect(page.get_by_text(f"eclipse/progress: 100% · {rows:,}/{rows:,} rows")).to_be_visible()
    expect(page.get_by_text("Success").first).to_be_visible()
    shot(page, "01-runs-filtered-by-job-id")

    run_link.click()
    expect(page).to_have_url(f"{ui}/runs/{status['runId']}")
    expect(page.get_by_text("Success").first).to_be_visible()
    expect(page.get_by_text("ASSET_CHECK_EVALUATION").first).to_be_visible()
    shot(page, "02-run")

    page.goto(f"{ui}/assets/alerts_export?view=partitions&partition=ws_acme")
    expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
    metadata = page.locator("table")
    for key, value in (("job_id", job_id), ("scope", "full"), ("dagster/row_count", str(rows)),
                       ("requested_by", "usr_acme_analyst")):
        expect(metadata.locator("tr", has_text=key).first).to_contain_text(value)
    expect(page.get_by_text(f"parses as CSV with all {rows:,} rows")).to_be_visible()
    # The filtered export shows beside it as a later observation, under its own key.
    filtered_row = metadata.locator("tr", has_text="filtered_export").first
    expect(filtered_row).to_contain_text("Observed in run")
    shot(page, "03-partition-materialization")
    metadata.locator("tr", has_text="preview").last.scroll_into_view_if_needed()
    shot(page, "03b-partition-materialization-row-count-and-preview")

    page.goto(f"{ui}/assets/alerts_export?view=checks")
    for check in ("file_intact", "rows_complete"):
        expect(page.get_by_text(check).first).to_be_visible()
    expect(page.get_by_text("Succeeded")).to_have_count(2)
    shot(page, "04-checks")


def look_at_the_queue(page: Page, ui: str) -> None:
    """The queue's health: export_request_queue observed by its sensor, its figures plotted, its checks green."""
    page.set_viewport_size({"width": 1440, "height": 2200})
    page.goto(f"{ui}/assets/export_request_queue")
    expect(page.get_by_text("Latest observation")).to_be_visible()
    for key in ("lag_entries", "oldest_unread_age_seconds", "completed_last_hour", "runs_queued"):
        expect(page.get_by_text(key, exact=True).first).to_be_visible()
    page.get_by_role("button", name="Plots").first.click()
    expect(page.get_by_text("lag_entries", exact=True).first).to_be_visible()
    expect(page.locator("canvas, svg.recharts-surface").first).to_be_visible()
    shot(page, "05-queue-plots")
    page.goto(f"{ui}/assets/export_request_queue?view=checks")
    for check in ("queue_lag", "failure_share"):
        expect(page.get_by_text(check).first).to_be_visible()
    expect(page.get_by_text("Succeeded")).to_have_count(2)
    shot(page, "06-queue-checks")
