"""Training threads follow the cores other processes leave free: decided from the CPU times a
test gives, and read from /proc for real."""

import time

import torch

from cnnlab.perf.share_cores import ShareCores, machine_sample, threads_left
from cnnlab.perf.threads import cores


def test_threads_left_are_the_cores_others_do_not_use():
    assert threads_left(0.05, total=2, cap=2) == 2  # an idle notebook beside: all cores
    assert threads_left(1.0, total=2, cap=2) == 1  # another training on one core
    assert threads_left(3.7, total=2, cap=2) == 1  # never fewer than one
    assert threads_left(0.0, total=8, cap=4) == 4  # never more than speed.threads


def test_a_busy_neighbour_takes_a_thread_and_gives_it_back():
    """What ShareCores decides from the CPU times it is given (not the machine's load, which
    other processes on a test machine would change)."""
    before = torch.get_num_threads()
    others = cores() - 1  # cores busy with a neighbour's work while it runs
    busy_then = 1.5 * (others + 1)  # its cores and this process's one, for 1.5 s
    samples = iter([(0.0, 0.0, 0.0), (1.5, busy_then, 1.5), (3.0, busy_then + 1.5, 3.0)])
    share = ShareCores(max_threads=2, sample=lambda: next(samples))
    share.retune()  # the first look only takes a sample
    try:
        assert share.retune() == 1 and torch.get_num_threads() == 1  # all but one core taken
        expected = min(2, cores())
        assert share.retune() == expected and torch.get_num_threads() == expected  # gone again
    finally:
        torch.set_num_threads(before)


def test_the_machine_sample_counts_this_process_s_own_cpu_time():
    """/proc read for real: busy time of the machine includes this process's own."""
    wall, busy, own = machine_sample()
    end = time.process_time() + 0.2
    while time.process_time() < end:  # 0.2 s of this process's own CPU time
        pass
    wall2, busy2, own2 = machine_sample()
    assert wall2 > wall and own2 - own >= 0.15 and busy2 - busy >= own2 - own - 0.05
