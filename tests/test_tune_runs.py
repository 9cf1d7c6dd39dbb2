"""Tier 2: Ray Tune experiments run as users run them, on the test session's local Ray: how
many trials run at once (``--max-concurrent``, Optuna's one-at-a-time), a Population Based
Training exploit's learning rate, and a killed driver resumed without running a trial twice.
Sweeps, ranking and bad input are in test_tune.py."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ray import tune

import rlgen
import rlgen_cli
import tune_configs
from runkit.trials import last_report
from tests.conftest import ROOT, files_holding
from tests.test_tune import FIXED, HALF_A_CPU, _trial_runs
from tuning.run import build_tuner


def _spans(out: Path) -> dict[str, tuple[int, int | None]]:
    """Trial -> (when its run started: run.json written, when it ended: result.json written,
    None for a trial that a scheduler stopped before its end), in ns."""
    spans = {}
    for run in _trial_runs(out):
        result = run / "result.json"
        end = result.stat().st_mtime_ns if result.is_file() else None
        spans[run.name] = ((run / "run.json").stat().st_mtime_ns, end)
    return spans


def _most_at_once(spans: dict[str, tuple[int, int | None]]) -> int:
    """The most trials running at the same time (every trial ended)."""
    events = sorted(
        [(start, 1) for start, _ in spans.values()] + [(end, -1) for _, end in spans.values()]
    )  # an end before a start at the same instant
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


def test_optuna_search_runs_its_trials_one_at_a_time_with_max_concurrent_1(tmp_path, ray_local):
    from ray.tune.search.optuna import OptunaSearch

    exp = tune_configs.load_experiment("reinforce_cartpole")
    tuner = build_tuner(exp, tmp_path / "built", search="optuna")
    assert isinstance(tuner._local_tuner._tune_config.search_alg, OptunaSearch)
    out = tmp_path / "exp"
    sets = [f"--set={k}={v}" for k, v in {**FIXED, **HALF_A_CPU}.items()]
    status = rlgen_cli.main(
        ["tune", "reinforce_cartpole", "--search", "optuna", "--num-samples", "2",
         "--max-env-steps", "600", "--max-concurrent", "1", *sets, "--output", str(out)]
    )  # fmt: skip
    assert status == 0
    result = json.loads((out / "results.json").read_text())
    assert result["num_trials"] == 2
    lrs = [t["config"]["lr"] for t in result["trials"]]
    assert len(set(lrs)) == 2 and all(3e-4 <= lr <= 1e-2 for lr in lrs)
    stored = [json.loads((r / "run.json").read_text()) for r in _trial_runs(out)]
    assert sorted(s["spec"]["overrides"]["lr"] for s in stored) == sorted(lrs)
    # The cluster holds four such trials at once; --max-concurrent 1 ran them one after the
    # other: the first alone to its end (ASHA stops no trial that is first at its rungs), the
    # second started after that.
    [(first, first_end), (second, _)] = sorted(_spans(out).values())
    assert first_end is not None and first < first_end < second


def test_max_concurrent_2_caps_the_trials_running_at_once(tmp_path, ray_local):
    base = tune_configs.load_experiment("reinforce_cartpole")
    lrs = [0.003, 0.001, 0.0003]
    exp = dataclasses.replace(
        base,
        space={**FIXED, **HALF_A_CPU, "lr": tune.grid_search(lrs)},
        num_samples=1,
        max_env_steps=3000,
        grace_fraction=1.0,  # ASHA's first rung at the end: every trial writes its result.json
    )
    out = tmp_path / "exp"
    result = rlgen.tune(exp, output=out, max_concurrent=2)
    assert result.num_trials == 3 and {t["status"] for t in result.trials} == {"finished"}
    spans = _spans(out)
    assert len(spans) == 3 and all(end is not None for _, end in spans.values())
    # Two at once (the third waited for a free place), never three.
    assert _most_at_once(spans) == 2


def test_pbt_exploit_changes_the_lr_the_optimizer_steps_with(tmp_path, ray_local):
    base = tune_configs.load_experiment("reinforce_cartpole")
    exp = dataclasses.replace(
        base,
        name="reinforce_cartpole_pbt",
        # Every report a perturbation point, a trial's last one too. PBT is asynchronous: a
        # trial at one is compared with the other's last score, often an iteration behind (on a
        # rising curve it then looks ahead and does not exploit): a 5-point run of 8 games an
        # iteration once ended without an exploit. With 4 games an iteration there are ~12.
        space={**FIXED, "episodes_per_batch": 4, "lr": tune.loguniform(2e-3, 1e-2)},
        scheduler="pbt",
        num_samples=2,
        max_env_steps=6000,
        perturbation_interval=1,
    )
    out = tmp_path / "exp"
    rlgen.tune(exp, output=out)
    logs = "".join(p.read_text() for p in (out / "trials").glob("*.log"))
    assert "exploit" in logs, logs
    # A trial's last report ends it: no exploit restarts a run that has nothing left to train.
    assert "finished before" not in logs, logs
    exploits = 0
    for progress in out.glob("run_trial_*/result.json"):
        rows = [json.loads(line) for line in progress.read_text().splitlines()]
        for before, after in zip(rows, rows[1:], strict=False):
            if after["config"]["lr"] != before["config"]["lr"]:
                exploits += 1
                used = after["learner/learning_rate"]  # read before the first step's update
                assert used == pytest.approx(after["config"]["lr"], rel=1e-6)
                assert not math.isclose(used, before["config"]["lr"], rel_tol=1e-3)
    assert exploits >= 1


def test_a_trials_last_report_ends_it_before_the_scheduler_is_asked():
    """Tune consults no scheduler on a report that ends its trial: PBT cannot exploit a trial
    on its last report (which would restart a run with nothing left to train under a new
    config)."""
    from ray.tune.experiment import Trial

    trial = Trial("__fake", stopping_criterion={})  # Tune's name for a trainable never run
    assert trial.should_stop(last_report({"env_steps": 4000}))
    assert not trial.should_stop({"env_steps": 4000})


def _assert_continued_from(run: Path, iteration: int) -> None:
    """The trial's run was restored from its checkpoint of ``iteration``: the resumed run's
    curve (a second event file) starts above the env steps of that iteration and goes up. A
    run started again from scratch would start at one iteration's steps; RLlib's env-step
    count continues only from a restored Algorithm."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curves = []
    for f in sorted((run / "tensorboard").glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(f))
        acc.Reload()
        if "perf/env_steps_per_s" in acc.Tags()["scalars"]:  # not the HPARAMS file
            curves.append([e.step for e in acc.Scalars("perf/env_steps_per_s")])  # each iteration
    assert len(curves) == 2, (run, curves)
    before, after = curves
    assert len(before) >= iteration  # flushed before the checkpoint was written
    assert after and after[0] > before[iteration - 1] and after == sorted(after), (before, after)


def test_killed_driver_resumes_without_running_a_trial_twice(tmp_path):
    out = tmp_path / "exp"
    args = [
        sys.executable, str(ROOT / "rlgen.py"), "tune", "reinforce_cartpole", "--output",
        str(out), "--num-samples", "2", "--max-env-steps", "24000",
        "--set", "episodes_per_batch=4", "--set", "baseline=value",
    ]  # fmt: skip
    secret = f"aws-{os.urandom(16).hex()}"  # must reach no file of the experiment
    env = dict(os.environ, PYTHONWARNINGS="ignore", AWS_SECRET_ACCESS_KEY=secret)
    driver = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        # Both trials running, each with a checkpoint. ASHA's first rung, at a quarter of the
        # budget (6,000 env steps), comes after the first checkpoint at iteration 10 (40
        # episodes) whatever lr a trial draws: with 8 episodes per iteration and a 3,000-step
        # rung, a trial that learned fast was once stopped at 3,381 steps with no checkpoint.
        while time.monotonic() < deadline:
            runs = list((out / "trials").glob("*/checkpoints/iter_*")) if out.exists() else []
            if len({p.parts[-3] for p in runs}) == 2:
                break
            assert driver.poll() is None, "the experiment ended before the kill"
            time.sleep(0.5)
        else:
            pytest.fail("the trials wrote no checkpoints within 300 s")
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    assert not (out / "results.json").exists(), "the driver was killed before the end"
    resumed = subprocess.run(
        [*args[:4], "--output", str(out), "--resume"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    assert result["num_trials"] == 2 and len(_trial_runs(out)) == 2
    starts = {p.stem: p.read_text().splitlines() for p in (out / "trials").glob("*.log")}
    assert len(starts) == 2
    status = {row["trial"]: row["status"] for row in result["trials"]}
    restored = 0
    for trial, lines in starts.items():
        fresh = [line for line in lines if "fresh start" in line]
        assert len(fresh) == 1, (trial, lines)  # never trained from scratch twice
        if len(lines) == 1:  # ended before the kill (ASHA's stop): Tune does not start it again
            assert status[trial] in ("stopped early", "finished"), (trial, status, lines)
            continue
        assert "resumed from iter_" in lines[1] or "finished before" in lines[1], lines
        if "resumed from iter_" in lines[1]:
            _assert_continued_from(out / "trials" / trial, int(lines[1].rsplit("iter_", 1)[1]))
            restored += 1
    # The kill came at the first checkpoints, long before either trial's end.
    assert restored >= 1, starts
    assert not files_holding(out, secret) and secret not in resumed.stdout + resumed.stderr
