"""Training threads follow the cores other processes leave free: measured on this machine."""

import subprocess
import sys
import time

import pytest
import torch

from cnnlab.perf.share_cores import ShareCores, threads_left
from cnnlab.perf.threads import cores


def test_threads_left_are_the_cores_others_do_not_use():
    assert threads_left(0.05, total=2, cap=2) == 2  # an idle notebook beside: all cores
    assert threads_left(1.0, total=2, cap=2) == 1  # another training on one core
    assert threads_left(3.7, total=2, cap=2) == 1  # never fewer than one
    assert threads_left(0.0, total=8, cap=4) == 4  # never more than speed.threads


@pytest.mark.skipif(cores() < 2, reason="needs 2 cores to share")
def test_a_busy_neighbour_takes_a_thread_and_gives_it_back():
    before = torch.get_num_threads()
    share = ShareCores(max_threads=2)
    share.retune()  # the first look only takes a sample
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.5)
        assert share.retune() == 1 and torch.get_num_threads() == 1
    finally:
        burner.kill()
        burner.wait()
    time.sleep(1.5)
    assert share.retune() == 2 and torch.get_num_threads() == 2
    torch.set_num_threads(before)
