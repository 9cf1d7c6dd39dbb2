"""Ray Tune experiments on a real local Ray instance: every experiment builds its Tuner; a
2-trial ASHA sweep of an RL job and of a generative job run to the end with TensorBoard curves,
HPARAMS and a best.yaml that ``rlgen train`` takes; a trial's result equals the same config
trained alone; of two trials that both solve, the faster ranks first; bad input exits 2 and
writes nothing. Concurrency, PBT and a killed driver are in test_tune_runs.py."""

from __future__ import annotations

import dataclasses
import json
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
from tests.test_vae_job import _small_dataset
from tests.vae_checkpoints import small_frame_vae
from tune_configs.spaces import gen_space, rl_space
from tuning.run import build_tuner
from tuning.summary import HPARAM_METRIC_PREFIX

# Every trial of these tests trains REINFORCE's defaults except the searched lr.
FIXED = {"episodes_per_batch": 8, "baseline": "value"}
# Trials small enough that the 2-CPU test cluster runs four at once.
HALF_A_CPU = {"num_cpus_for_main_process": 0.5, "num_cpus_per_learner": 0.5}


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


def test_an_experiment_refuses_to_start_without_what_it_needs(tmp_path, rlgen_here):
    out = tmp_path / "exp"
    proc = rlgen_here("tune", "a2c_atari_pretrained", "--output", str(out))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        "rlgen: error: tune a2c_atari_pretrained: give --set encoder=... (a VAE run or "
        "checkpoint trained on Breakout frames)"
    )
    assert not out.exists()


def test_every_experiment_builds_its_tuner(tmp_path, ray_local):
    names = sorted(tune_configs.EXPERIMENTS)
    assert names == sorted(
        ["reinforce_cartpole", "a2c_cartpole", "dqn_cartpole", "dqn_atari", "a2c_atari",
         "a2c_atari_pretrained", "ppo_cartpole", "ppo_atari", "vae_mnist5k", "pixelcnn_mnist5k"]
    )  # fmt: skip
    vae = str(small_frame_vae(tmp_path / "vae"))
    cpus = ray_local.cluster_resources()["CPU"]
    assert "GPU" not in ray_local.cluster_resources()  # the counts below are for CPUs alone
    for name in names:
        exp = tune_configs.load_experiment(name)
        assert exp.name == name and exp.doc.strip(), name
        assert "Expect" in exp.doc, f"{name}: its docstring states what result to expect"
        for key, _ in exp.needs:  # what the user gives with --set (a VAE run of theirs)
            exp = dataclasses.replace(exp, space={**exp.space, key: vae})
        tuner = build_tuner(exp, tmp_path / name)  # every candidate value is checked here
        tc = tuner._local_tuner._tune_config
        assert tc.num_samples == exp.num_samples
        pbt = ("dqn_atari", "a2c_atari", "ppo_atari")
        expected = PopulationBasedTraining if name in pbt else ASHAScheduler
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
