"""The Python API (``rlgen.train / evaluate / sample``) on a real local Ray instance: the
README's example as written, the per-report callback stopping RL and generative runs (one and
two Train workers alike), and bad input raising ``rlgen.UserError`` with nothing written."""

from __future__ import annotations

import json
import re

import pytest
import torch

import rlgen
from tests.conftest import ROOT
from tests.test_vae_job import _small_dataset


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## From Python", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README's From Python section has no python block"
    return match.group(1)


def test_readme_example_runs_as_written(tmp_path, monkeypatch, ray_local, capsys):
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(_readme_example(), "README.md", "exec"), scope)  # noqa: S102
    result = scope["result"]
    assert isinstance(result, rlgen.RLResult)
    # Stopped by the callback on the first report at or past 3000 env steps.
    assert result.stop_reason == "callback" and not result.solved
    out = capsys.readouterr().out
    steps = [int(s) for s in re.findall(r"iteration \d+: (\d+) env steps", out)]
    assert steps[-1] == result.env_steps >= 3000 > steps[-2]
    # The typed result is result.json; the last checkpoint is that of the stopping iteration.
    run_dir = tmp_path / "runs" / "from-python"
    assert json.loads((run_dir / "result.json").read_text()) == rlgen.to_dict(result)
    last = run_dir / "checkpoints" / f"iter_{len(steps):06d}" / "rlgen_state.json"
    state = json.loads(last.read_text())
    assert state["state"]["env_steps"] == result.env_steps
    assert "did you mean gamma" in out
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["from-python"]  # bad call: none


def _stop_after(epoch: int, seen: list):
    def on_report(report):
        seen.append(report)
        return report.iteration >= epoch

    return on_report


@pytest.mark.parametrize("workers", [1, 2])
def test_callback_stops_a_generative_run_after_the_same_epoch(tmp_path, ray_local, workers):
    data = _small_dataset(tmp_path / "digits", n_train=128, n_test=32)
    seen: list = []
    result = rlgen.train(
        "vae", dataset=str(data), epochs=4, num_workers=workers,
        overrides={"iw_samples": 2, "grid_n": 4}, output=tmp_path / "run",
        on_report=_stop_after(2, seen),
    )  # fmt: skip
    assert isinstance(result, rlgen.GenerativeResult)
    assert [r.iteration for r in seen] == [1, 2]  # every epoch reported once, none after
    assert result.epochs == 2 and result.stop_reason == "callback"
    assert result.test_nll_nats == seen[-1].metrics["test_nll_nats"]
    state = torch.load(f"{result.checkpoint}/state.pt", weights_only=True)
    assert state["epoch"] == 2
    log = (tmp_path / "run" / "progress.log").read_text().splitlines()
    assert [line.split(" | ")[0] for line in log] == ["[vae] epoch 1/4", "[vae] epoch 2/4"]


@pytest.mark.parametrize(
    ("job", "kwargs", "message"),
    [
        ("reinforce", {"env": "CartPole-v1", "overrides": {"gama": 0.9}}, "did you mean gamma"),
        ("reinforce", {"env": "CartPole-v1", "epochs": 3}, "--epochs is for generative"),
        ("vae", {"env": "CartPole-v1"}, "--env is for RL jobs"),
        ("vae", {"overrides": {"epochs": 0}}, "epochs=0 is out of range"),
        ("dqn", {"env": "Pendulum-v1"}, "Discrete action space"),
        ("trpo", {"env": "CartPole-v1"}, "unknown algorithm or model"),
        ("a2c", {}, "--env is required"),
    ],
)
def test_bad_input_raises_user_error_and_writes_nothing(tmp_path, job, kwargs, message):
    with pytest.raises(rlgen.UserError, match=message):
        rlgen.train(job, output=tmp_path / "run", **kwargs)
    assert not (tmp_path / "run").exists()


def test_resume_of_a_directory_that_is_not_a_run(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    with pytest.raises(rlgen.UserError, match="not an rlgen run directory"):
        rlgen.train("reinforce", env="CartPole-v1", resume=tmp_path / "other")
    assert (tmp_path / "other" / "notes.txt").read_text() == "keep me"
