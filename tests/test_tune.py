"""Ray Tune experiments on a real local Ray instance: every experiment builds its Tuner; a
2-trial ASHA sweep of an RL job and of a generative job run to the end with TensorBoard curves,
HPARAMS and a best.yaml that ``rlgen train`` takes; a trial's result equals the same config
trained alone; Optuna runs the trials it suggested; ``--max-concurrent`` caps the trials running
at once; a PBT exploit changes the lr the optimizer steps with; a killed driver resumes, its
trials restored from their checkpoints, without running a trial twice; bad input exits 2 and
writes nothing."""

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
from ray.tune.schedulers import ASHAScheduler, PopulationBasedTraining

import rlgen
import rlgen_cli
import tune_configs
from algorithms import ALGORITHMS
from algorithms.reinforce.algorithm import ReinforceConfig
from generative.vae.config import VAEConfig
from tests.conftest import ROOT, files_holding
from tests.test_vae_job import _small_dataset
from tune_configs.spaces import gen_space, rl_space
from tuning.run import build_tuner
from tuning.summary import HPARAM_METRIC_PREFIX

# Every trial of these tests trains REINFORCE's defaults except the searched lr.
FIXED = {"episodes_per_batch": 8, "baseline": "value"}


def _hparams(run_tb: Path) -> tuple[dict, dict]:
    """(hyperparameters, final metrics) a trial's TensorBoard run shows in the HPARAMS view."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(run_tb))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    hparams = {}
    for key, value in info.hparams.items():
        kind = value.WhichOneof("kind")
        hparams[key] = getattr(value, kind)
    metrics = {
        tag[len(HPARAM_METRIC_PREFIX) :]: acc.Scalars(tag)[-1].value
        for tag in acc.Tags()["scalars"]
        if tag.startswith(HPARAM_METRIC_PREFIX)
    }
    return hparams, metrics


def _trial_runs(out: Path) -> list[Path]:
    return sorted(p for p in (out / "trials").iterdir() if p.is_dir())


def test_misspelled_search_key_fails_when_the_module_is_imported():
    with pytest.raises(TypeError, match="ReinforceConfig has no setting 'lrr'; did you mean lr"):
        rl_space(ReinforceConfig, lrr=tune.loguniform(1e-4, 1e-2))
    with pytest.raises(TypeError, match="VAEConfig has no setting 'latnt_dim'"):
        gen_space(VAEConfig, latnt_dim=tune.choice([8, 16]))


def test_every_experiment_builds_its_tuner(tmp_path, ray_local):
    names = sorted(tune_configs.EXPERIMENTS)
    assert names == sorted(
        ["reinforce_cartpole", "a2c_cartpole", "dqn_cartpole", "dqn_atari", "a2c_atari",
         "vae_mnist5k", "pixelcnn_mnist5k"]
    )  # fmt: skip
    cpus = ray_local.cluster_resources()["CPU"]
    assert "GPU" not in ray_local.cluster_resources()  # the counts below are for CPUs alone
    for name in names:
        exp = tune_configs.load_experiment(name)
        assert exp.name == name and exp.doc.strip(), name
        assert "Expect" in exp.doc, f"{name}: its docstring states what result to expect"
        tuner = build_tuner(exp, tmp_path / name)  # every candidate value is checked here
        tc = tuner._local_tuner._tune_config
        assert tc.num_samples == exp.num_samples
        expected = PopulationBasedTraining if "atari" in name else ASHAScheduler
        assert type(tc.scheduler) is expected, name
        if expected is PopulationBasedTraining:  # it compares how good trials are now
            assert (tc.metric, tc.mode) == (None, None)
            assert tc.scheduler._metric == exp.kind.live_metric == "episode_return_mean"
            assert tc.scheduler._mode == exp.mode
        else:  # ASHA and the ranking: the experiment's metric
            assert (tc.metric, tc.mode) == (exp.metric, exp.mode)
        assert set(tuner._local_tuner._param_space) == set(exp.searched) != set(), name
        # By default as many trials at once as the local cluster's CPUs hold: an RL trial
        # occupies what RLlib asks for it, a generative one its Train workers and a CPU for
        # Ray Data's reads.
        if exp.job in ALGORITHMS:
            per_trial = tuner._local_tuner._trainable._resources.required_resources["CPU"]
        else:
            per_trial = exp.num_workers + 1
        assert tc.max_concurrent_trials == max(1, int(cpus // per_trial)), name
    exp = tune_configs.load_experiment("reinforce_cartpole")
    tuner = build_tuner(exp, tmp_path / "given", max_concurrent=3)
    assert tuner._local_tuner._tune_config.max_concurrent_trials == 3


def test_rl_sweep_two_trials_hparams_best_yaml_and_same_result_as_alone(tmp_path, ray_local):
    out = tmp_path / "exp"
    result = rlgen.tune(
        "reinforce_cartpole",
        num_samples=1,
        space={"lr": tune.grid_search([0.003, 0.0003])},
        overrides=FIXED,
        max_env_steps=3000,
        output=out,
    )
    assert result.num_trials == 2 and len(_trial_runs(out)) == 2
    assert json.loads((out / "results.json").read_text()) == rlgen.to_dict(result)
    by_lr = {}
    for run in _trial_runs(out):
        hparams, metrics = _hparams(run / "tensorboard")
        [row] = [t for t in result.trials if t["trial"] == run.name]
        assert hparams["lr"] == pytest.approx(row["config"]["lr"])
        assert metrics["episode_return_mean"] == pytest.approx(row["episode_return_mean"])
        # The trial's own curves, against env steps.
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        acc = EventAccumulator(str(run / "tensorboard"))
        acc.Reload()
        steps = [e.step for e in acc.Scalars("episode/return_mean")]
        assert steps == sorted(steps) and steps[-1] == row["env_steps"] and len(steps) >= 2
        by_lr[row["config"]["lr"]] = (run, row)
    assert set(by_lr) == {0.003, 0.0003}
    # The best trial is the one with the larger area under its learning curve (the mean return
    # over its env-step budget); its config is best.yaml.
    assert result.metric == "return_over_budget"
    best = max(result.trials, key=lambda t: t["return_over_budget"])
    assert result.best_trial == best["trial"]
    assert result.best_config == {**FIXED, "lr": best["config"]["lr"]}
    assert result.best_checkpoint.startswith(str(out / "trials" / best["trial"]))
    # ASHA may stop the worse trial at a rung; a finished trial trained exactly what the same
    # config and seed train alone, through rlgen.train with best.yaml or its config.
    finished = [t for t in result.trials if t["status"] == "finished"]
    assert finished, result.trials
    trial = finished[0]
    run_dir = out / "trials" / trial["trial"]
    alone = rlgen.train(
        "reinforce",
        env="CartPole-v1",
        overrides={**FIXED, "lr": trial["config"]["lr"]},
        max_env_steps=3000,
        seed=0,
        video_frames=0,
        output=tmp_path / "alone",
    )
    in_tune = json.loads((run_dir / "result.json").read_text())
    assert alone.env_steps == in_tune["env_steps"]
    assert alone.episode_return_mean == in_tune["episode_return_mean"]
    # best.yaml is accepted unchanged by `rlgen train --config`.
    again = rlgen.train(
        "reinforce", env="CartPole-v1", config=result.best_yaml, max_env_steps=300,
        video_frames=0, output=tmp_path / "from_yaml",
    )  # fmt: skip
    stored = json.loads((Path(again.run_dir) / "run.json").read_text())["spec"]["overrides"]
    assert stored == result.best_config


def test_of_two_trials_that_both_solve_the_one_in_fewer_env_steps_ranks_first(tmp_path, ray_local):
    """Every game of the corridor returns its reward threshold, so both trials solve on their
    first batch and end with the same return (20): 8 games per batch solve after 160 env steps,
    16 after 320. Ranked by the mean return over the 2,000-step budget (0 before the first
    batch, then 20): 20 * 1,840 / 2,000 = 18.4 against 20 * 1,680 / 2,000 = 16.8."""
    from tests import threshold_envs
    from tuning.experiment import Experiment

    exp = Experiment(
        name="corridor_rank",
        job="reinforce",
        target="tests.threshold_envs:Corridor20Solved-v0",
        space={"episodes_per_batch": tune.grid_search([16, 8]), **HALF_A_CPU},
        num_samples=1,
        max_env_steps=2000,
    )
    result = rlgen.tune(exp, output=tmp_path / "exp")
    by_batch = {t["config"]["episodes_per_batch"]: t for t in result.trials}
    assert {k: t["episode_return_mean"] for k, t in by_batch.items()} == {
        8: threshold_envs.THRESHOLD, 16: threshold_envs.THRESHOLD,
    }  # fmt: skip
    assert {k: t["env_steps"] for k, t in by_batch.items()} == {8: 160, 16: 320}
    assert by_batch[8]["return_over_budget"] == pytest.approx(18.4)
    assert by_batch[16]["return_over_budget"] == pytest.approx(16.8)
    assert result.best_trial == by_batch[8]["trial"]
    assert result.best_config["episodes_per_batch"] == 8


def test_generative_sweep_two_trials_report_each_epoch(tmp_path, ray_local):
    data = _small_dataset(tmp_path / "digits")
    out = tmp_path / "exp"
    result = rlgen.tune(
        "vae_mnist5k",
        num_samples=1,
        dataset=str(data),
        epochs=2,
        space={"lr": tune.grid_search([1e-3, 3e-3])},
        overrides={"latent_dim": 8, "hidden": 64, "iw_samples": 2, "grid_n": 4},
        output=out,
    )
    assert result.num_trials == 2 and len(_trial_runs(out)) == 2
    for run in _trial_runs(out):
        [row] = [t for t in result.trials if t["trial"] == run.name]
        hparams, metrics = _hparams(run / "tensorboard")
        assert hparams["lr"] == pytest.approx(row["config"]["lr"])
        assert hparams["latent_dim"] == 8  # fixed keys are part of the trial's config too
        own = json.loads((run / "result.json").read_text())
        assert row["status"] == "finished" and row["epoch"] == 2 == own["epochs"]
        assert metrics["test_nll_nats"] == pytest.approx(own["test_nll_nats"])
        assert row["test_nll_nats"] == pytest.approx(own["test_nll_nats"])
    # Tune saw every epoch (the last one after the run had written result.json).
    for progress in out.glob("run_trial_*/result.json"):
        epochs = [json.loads(line)["epoch"] for line in progress.read_text().splitlines()]
        assert epochs == [1, 2]
    assert result.best_metric == min(t["test_nll_nats"] for t in result.trials)
    assert Path(result.best_yaml).is_file() and result.best_checkpoint is not None


# Half a CPU per trial: the local cluster's 2 CPUs hold 4 trials at once, so only the
# --max-concurrent limit keeps fewer running.
HALF_A_CPU = {"num_cpus_for_main_process": 0.5, "num_cpus_per_learner": 0.5}


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
        space={**FIXED, "lr": tune.loguniform(1e-4, 1e-2)},
        scheduler="pbt",
        num_samples=2,
        max_env_steps=6000,
        perturbation_interval=2,
    )
    out = tmp_path / "exp"
    rlgen.tune(exp, output=out)
    logs = "".join(p.read_text() for p in (out / "trials").glob("*.log"))
    assert "exploit" in logs, logs
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
        str(out), "--num-samples", "2", "--max-env-steps", "12000",
        "--set", "episodes_per_batch=8", "--set", "baseline=value",
    ]  # fmt: skip
    secret = f"aws-{os.urandom(16).hex()}"  # must reach no file of the experiment
    env = dict(os.environ, PYTHONWARNINGS="ignore", AWS_SECRET_ACCESS_KEY=secret)
    driver = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        # Both trials running, each with a checkpoint (ASHA's first rung, at a quarter of the
        # budget, comes after the first checkpoint at iteration 10).
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


@pytest.mark.parametrize(
    "argv, message",
    [
        (["tune", "nope"], "unknown experiment 'nope'"),
        (["tune", "reinforce_cartpole", "--set", "lrr=0.1"], "has no setting 'lrr'"),
        (["tune", "reinforce_cartpole", "--num-samples", "0"], "--num-samples 0"),
        (["tune", "reinforce_cartpole", "--set", "lr=-1"], "lr"),
        (["tune", "vae_mnist5k", "--max-env-steps", "10"], "--max-env-steps is not a setting"),
        (["tune", "dqn_atari", "--search", "optuna"], "Population Based Training"),
        (["tune", "reinforce_cartpole", "--search", "bayes"], "--search bayes"),
        (["tune", "reinforce_cartpole", "--resume"], "not an rlgen tune experiment"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "exp"
    status = rlgen_cli.main([*argv, "--output", str(out)])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_resume_of_a_directory_that_is_not_an_experiment(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("mine")
    status = rlgen_cli.main(["tune", "reinforce_cartpole", "--output", str(run), "--resume"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and "not an rlgen tune experiment directory" in err
    assert [p.name for p in run.iterdir()] == ["keep.txt"]
