"""The end of a sweep whose trials have all returned: a signal while its leaderboard is written
is held and reported after it, in one line, never as unfinished trials to resume."""

import os
import signal

import pytest

from cnnlab.signals import STOP_SIGNALS, stop_sweep_on_signals
from cnnlab.sweeps.leaderboard import MARKDOWN_FILE, summarize
from cnnlab.sweeps.summary import write_final_leaderboard


@pytest.fixture
def handlers():
    """The process's handlers, as they were, after the test."""
    saved = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.mark.parametrize("signum", STOP_SIGNALS)
def test_a_signal_while_the_final_leaderboard_is_written_is_reported_after_it(
    tmp_path, capsys, handlers, signum
):
    stop_sweep_on_signals(tmp_path, trials_in_process=True)  # the sweep's, as during its trials

    def signalled_write(sweep_dir):
        os.kill(os.getpid(), signum)  # as a Ctrl-C lands while the leaderboard is written
        return summarize(sweep_dir)

    with pytest.raises(SystemExit) as stopped:
        write_final_leaderboard(tmp_path, signalled_write)
    assert stopped.value.code == 128 + signum
    assert (tmp_path / MARKDOWN_FILE).is_file()
    err = capsys.readouterr().err.strip().splitlines()
    name = signal.Signals(signum).name
    assert err == [
        f"cnnlab: interrupted: {name} while the sweep's leaderboard was written: every trial "
        "had returned, and the leaderboard is complete"
    ]
    os.kill(os.getpid(), signum)  # a second one is held too: no death without a line


def test_without_a_signal_the_final_leaderboard_gives_the_sweeps_status(tmp_path, handlers):
    assert write_final_leaderboard(tmp_path) == summarize(tmp_path)
