"""TensorBoard as a user sees it: a real 2-trial sweep opened in a real browser (Debian's
chromium, headless, driven by playwright). The HPARAMS table must show both trials under their
short names, the swept knob among the columns it shows by default, and each trial's val
accuracy as the leaderboard has it."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from playwright.sync_api import sync_playwright

from tests.debian import CannotInstall, ensure_debian_packages
from tests.helpers import TINY, cli, leaderboard, sweep_dir_of

REQUIRED = os.environ.get("CNNLAB_REQUIRE_BROWSER") == "1"  # .ci/run: CI must not skip it


@pytest.fixture(scope="module")
def chromium() -> str:
    try:
        ensure_debian_packages(["chromium"], ["chromium"])
    except CannotInstall as e:
        if REQUIRED:
            pytest.fail(f"CNNLAB_REQUIRE_BROWSER=1 but {e}")
        pytest.skip(str(e))
    return shutil.which("chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_tensorboard(logdir, port: int, log) -> subprocess.Popen:
    """TensorBoard on ``logdir``, once it answers."""
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir),
           "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(240):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=1)
            return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise AssertionError(f"TensorBoard did not answer on port {port}")


def hparams_table(chromium: str, port: int) -> list[list[str]]:
    """The rows of TensorBoard's HPARAMS table view (header first), as its cells read."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium,
                                             args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}/#hparams")
        page.get_by_text("hp/val_acc").first.wait_for(timeout=90_000)
        page.get_by_text("/tensorboard").nth(1).wait_for(timeout=90_000)  # both trials' rows
        cells = [c.strip() for c in page.locator("vaadin-grid-cell-content").all_inner_texts()]
        browser.close()
    header = cells[: cells.index("hp/val_acc") + 1]
    rows = [[c for c in cells[i:] if c][: len(header) - 1] for i, c in enumerate(cells)
            if c.endswith("/tensorboard")]  # fmt: skip
    return [header, *rows]


def test_hparams_table_shows_both_trials_their_swept_knob_and_val_acc(
    chromium, mnist_dir, tmp_path
):
    done = cli("cnnlab.train", "-m", *TINY, "model.dense_units=16,32", output_dir=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    sweep_dir = sweep_dir_of(tmp_path)
    with (tmp_path / "tensorboard.log").open("w") as log:
        server = serve_tensorboard(sweep_dir, free_port(), log)
        try:
            header, *rows = hparams_table(chromium, int(server.args[-1]))
        finally:
            server.terminate()
            server.wait(timeout=30)
    assert header[:3] == ["Trial ID", "Show Metrics", "model/dense_units"]  # swept knob first
    assert sorted(row[0] for row in rows) == [
        "0_model.dense_units=16/tensorboard", "1_model.dense_units=32/tensorboard",
    ]  # fmt: skip
    val_acc = header.index("hp/val_acc") - 1  # rows have no "Show Metrics" cell text
    for row in rows:  # the trial's own knob value and its val accuracy, as the leaderboard has
        trial = next(r for r in leaderboard(sweep_dir) if row[0].startswith(r["dir"] + "/"))
        units = trial["dir"].split("=")[-1]
        assert float(row[1]) == float(units)
        assert float(row[val_acc]) == pytest.approx(float(trial["val/acc"]), abs=5e-6)
