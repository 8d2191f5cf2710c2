"""Two sides taking turns never run at the same time, and one finishing frees the other."""

import itertools
import threading
import time

import pytest

from bench.turns import Turns, pipes
from cnnlab.errors import CnnlabError


def take_turns(turns: Turns, windows: int, log: list) -> None:
    """``windows`` timed windows of 20 ms, each inside a turn, as ThroughputMeter holds them."""
    for _ in range(windows):
        turns.take()
        start = time.perf_counter()
        time.sleep(0.02)
        log.append((turns.role, start, time.perf_counter()))
        turns.give()
    turns.leave()


def test_turns_alternate_strictly_and_the_last_side_runs_alone(tmp_path):
    log: list = []
    with pipes(tmp_path / "turns") as directory:
        second = threading.Thread(target=take_turns, args=(Turns(directory, "second"), 6, log))
        second.start()  # the second side arrives first: it still waits for the first one
        time.sleep(0.1)
        assert log == []
        take_turns(Turns(directory, "first"), 3, log)
        second.join(timeout=10)
    assert not second.is_alive()  # it did not wait for turns from a side that had left
    assert [role for role, _, _ in log] == ["first", "second"] * 3 + ["second"] * 3
    for (_, _, end), (_, start, _) in itertools.pairwise(log):
        assert end <= start  # no two windows overlap
    assert not (tmp_path / "turns").exists()  # the pipes are gone with the round


def test_a_missing_partner_is_an_error_not_a_hang(tmp_path):
    with pipes(tmp_path / "turns") as directory:
        lonely = Turns(directory, "first", timeout_s=0.2)
        with pytest.raises(CnnlabError, match=r"no turn from the other process in 0\.2 s"):
            lonely.take()
    with pytest.raises(CnnlabError, match="role='third'"):
        Turns(tmp_path, "third")


def test_pipes_never_take_over_or_remove_anothers(tmp_path):
    with pipes(tmp_path / "turns") as directory:
        with pytest.raises(FileExistsError), pipes(directory):
            pass
        assert sorted(p.name for p in directory.iterdir()) == ["first", "second"]
