"""Tier 1: ``runkit.trials.trial_lock``, one start of a Tune trial at a time in its run directory.
Tune stops a trial's actor gracefully and may start the trial again (a PBT exploit) while the old
start still writes checkpoints there: once, the old start removed a checkpoint the new one had
just written and was reporting (test_tune_runs' PBT test failed with FileNotFoundError). The
new start waits until the old one lets go; locks taken through separate opens exclude each
other as two processes' would."""

from __future__ import annotations

import threading
import time

import pytest

from runkit.trials import trial_lock


def test_a_second_start_waits_until_the_first_lets_go(tmp_path):
    run_dir = tmp_path / "trials" / "t1"
    events: list[str] = []
    first_in = threading.Event()

    def first() -> None:
        with trial_lock(run_dir):
            events.append("first in")
            first_in.set()
            time.sleep(0.5)
            events.append("first out")

    holder = threading.Thread(target=first)
    holder.start()
    assert first_in.wait(10)
    with trial_lock(run_dir, wait_s=30):
        events.append("second in")
    holder.join()
    assert events == ["first in", "first out", "second in"]
    assert (tmp_path / "trials" / "t1.lock").is_file() and not run_dir.exists()


def test_a_start_held_too_long_is_an_error_naming_the_trial(tmp_path):
    run_dir = tmp_path / "trials" / "t2"
    with trial_lock(run_dir):
        with pytest.raises(RuntimeError, match=r"t2: an earlier start of this trial still holds"):
            with trial_lock(run_dir, wait_s=0.3):
                pass
    with trial_lock(run_dir, wait_s=0.3):  # let go: free again
        pass


def test_other_trials_do_not_wait(tmp_path):
    with trial_lock(tmp_path / "trials" / "a"):
        with trial_lock(tmp_path / "trials" / "b", wait_s=0.3):
            pass


def test_a_symlink_in_place_of_the_lock_is_not_followed(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    (tmp_path / "trials").mkdir()
    (tmp_path / "trials" / "t3.lock").symlink_to(target)
    with pytest.raises(OSError):
        with trial_lock(tmp_path / "trials" / "t3"):
            pass
    assert target.read_text() == "keep"
