"""Hostile input, class by class, each as a table of variants: refused with exit status 2 (or a
UserError) and one line, before anything is written, allocated or imported.

- code from files: a checkpoint's env id naming a module, and stored or given config keys that
  name code, files or process environments;
- values: non-finite numbers anywhere (``--set``, ``--config`` JSON and YAML, nested lists),
  seeds outside 0..2**32-1, counts without a bound, unsupported observation spaces;
- sizes: widths, layers, frame stacks, runner counts and batch sizes from a config or a run
  spec, a weights file that unpacks to more than its network, a YAML alias bomb.

The shared checks themselves and the same classes through the Python API are in
``test_hostile_checks.py``.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.test_bad_inputs import _check_refused, _files

RL = ("train", "reinforce", "--env", "CartPole-v1")
A2C = ("train", "a2c", "--env", "CartPole-v1")
DQN = ("train", "dqn", "--env", "CartPole-v1")
VAE = ("train", "vae")
BIG = str(2**64)

CLI_CASES: list[tuple[str, tuple[str, ...], str]] = [
    # non-finite numbers, wherever they are written
    ("gamma nan", (*RL, "--set", "gamma=nan"), "gamma=nan must be a finite number"),
    ("lr inf", (*RL, "--set", "lr=inf"), "lr=inf must be a finite number"),
    ("lr -inf", (*A2C, "--set", "lr=-inf"), "must be a finite number"),
    ("yaml .nan", (*A2C, "--set", "vf_coeff=.nan"), "vf_coeff=nan must be a finite number"),
    ("nan inside a list", (*DQN, "--set", "epsilon=[1.0, .nan, 100]"), "finite number"),
    ("nan in a schedule", (*A2C, "--set", "entropy_coeff=[[0, 0.01], [100, .inf]]"), "finite"),
    ("generative nan", (*VAE, "--set", "lr=nan"), "lr=nan must be a finite number"),
    ("nan in an RLlib key", (*RL, "--set", "min_time_s_per_iteration=.nan"), "finite number"),
    ("json NaN file", (*RL, "--config", "{tmp}/nan.json"), "must be a finite number"),
    ("stop reward nan", (*RL, "--stop-reward", "nan"), "nan must be a finite number"),
    ("time budget inf", (*A2C, "--time-budget-s", "inf"), "inf must be a finite number"),
    ("tune time budget inf", ("tune", "reinforce_cartpole", "--time-budget-s", "inf"), "finite"),
    ("yaml .inf file", (*RL, "--config", "{tmp}/inf.yaml"), "must be a finite number"),
    ("yaml alias bomb", (*RL, "--config", "{tmp}/bomb.yaml"), "more than 100,000 values"),
    ("config over 1 MB", (*RL, "--config", "{tmp}/huge.yaml"), "larger than"),
    # seeds and counts
    ("RL seed 2**64", (*RL, "--seed", BIG), "--seed=18446744073709551616 is out of range"),
    ("RL seed -1", (*RL, "--seed", "-1"), "--seed=-1 is out of range"),
    ("generative seed 2**64", (*VAE, "--seed", BIG), "is out of range"),
    ("eval seed 2**64", ("eval", "{tmp}/rl-ckpt", "--seed", BIG), "is out of range"),
    ("sample seed -1", ("sample", "{tmp}/vae-ckpt", "--seed", "-1"), "is out of range"),
    ("tune 10**9 trials", ("tune", "reinforce_cartpole", "--num-samples", "1000000000"),
     "--num-samples 1000000000: must be from 1 to 10,000"),
    ("tune 0 trials", ("tune", "reinforce_cartpole", "--num-samples", "0"), "from 1 to"),
    ("tune 0 at once", ("tune", "reinforce_cartpole", "--max-concurrent", "0"), "from 1 to"),
    ("tune 10**6 at once", ("tune", "reinforce_cartpole", "--max-concurrent", "1000000"),
     "from 1 to"),
    ("tune seed 2**64", ("tune", "reinforce_cartpole", "--seed", BIG), "out of range"),
    ("eval 10**9 episodes", ("eval", "{tmp}/rl-ckpt", "--episodes", "1000000000"),
     "out of range"),
    # RLlib settings that name code, files or process environments
    ("callbacks class", (*RL, "--set", "callbacks_class=os.system"), "does not let a run set"),
    ("worker environment", (*A2C, "--set", "extra_python_environs_for_worker={LD_PRELOAD: x}"),
     "does not let a run set"),
    ("driver environment", (*DQN, "--set", "extra_python_environs_for_driver={A: b}"),
     "does not let a run set"),
    ("offline output", (*RL, "--set", "output=/tmp/elsewhere"), "does not let a run set"),
    ("offline input", (*RL, "--set", "input_=/etc"), "does not let a run set"),
    ("env config", (*RL, "--set", "env_config={env_id: 'evil:Env-v0'}"), "does not let"),
    ("old model dict", (*A2C, "--set", "model={custom_model: os.system}"), "does not let"),
    ("logger type", (*RL, "--set", "logger_config={type: os.system}"), "logger_config"),
    ("env runner class", (*RL, "--set", "env_runner_cls=os.system"), "does not let"),
    ("policies", (*RL, "--set", "policies={p: x}"), "does not let a run set"),
    # sizes a few bytes can ask for
    ("width 10**6", (*RL, "--set", "model_hiddens=[1000000]"), "each width must be <= 4096"),
    ("too many weights", (*A2C, "--set", "model_hiddens=[4096, 4096, 4096]"), "weights"),
    ("too many layers", (*DQN, "--set", "model_hiddens=[8,8,8,8,8,8,8,8,8]"), "1 to 8 of them"),
    ("frame stack 10**6", (*DQN, "--set", "frame_stack=1000000"), "frame_stack=1000000"),
    ("10**6 actors", (*A2C, "--num-env-runners", "1000000"), "num_env_runners=1000000"),
    ("10**6 envs", (*A2C, "--num-envs-per-env-runner", "1000000"), "num_envs_per_env_runner"),
    ("10**6 learners", (*RL, "--set", "num_learners=1000000"), "num_learners=1000000"),
    ("replay 10**12", (*DQN, "--set", "replay_capacity=1000000000000"), "replay_capacity"),
    ("batch 10**12", (*A2C, "--set", "train_batch_size_per_learner=1000000000000"),
     "train_batch_size_per_learner"),
    # observation spaces the policies do not take
    ("Discrete observations", ("train", "reinforce", "--env", "FrozenLake-v1"), "Discrete(16)"),
    ("Tuple observations", ("train", "a2c", "--env", "Blackjack-v1"), "Tuple("),
    ("Dict observations", ("train", "reinforce", "--env", "tests.hostile_envs:DictObs-v0"),
     "Dict("),
]  # fmt: skip


def _config_files(tmp: Path) -> None:
    (tmp / "nan.json").write_text('{"lr": NaN}')
    (tmp / "inf.yaml").write_text("gamma: 0.99\nlr: .inf\n")
    # nine levels of nine aliases: 387 million list items once expanded
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    (tmp / "bomb.yaml").write_text("\n".join(lines) + "\n")
    (tmp / "huge.yaml").write_text("lr: 0.001\n" + "# padding\n" * 120_000)


@pytest.mark.parametrize(("case", "argv", "needle"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_hostile_value_is_refused(tmp_path, rlgen_here, case, argv, needle):
    _config_files(tmp_path)
    _check_refused(tmp_path, case, argv, needle, rlgen_here)


# --- checkpoints handed over by someone else ----------------------------------------------


@pytest.fixture(autouse=True)
def _no_permitted_modules():
    """Each test starts with no env module permitted (a module the user named earlier in this
    process would otherwise stay importable)."""
    from envs import ids

    saved = set(ids._PERMITTED_MODULES)
    ids._PERMITTED_MODULES.clear()
    yield
    ids._PERMITTED_MODULES.clear()
    ids._PERMITTED_MODULES.update(saved)


def _checkpoint(
    root: Path,
    *,
    env: str = "CartPole-v1",
    overrides: dict | None = None,
    algorithm: str = "reinforce",
    weights: Any = None,
) -> Path:
    """An RL checkpoint as a training run writes it (run spec JSON, policy weights), built
    without training; ``weights``: the state dict to store (default: the module's own)."""
    import torch

    from algorithms.checkpoints import STATE_FILE, WEIGHTS_FILE
    from algorithms.configure import RLRunSpec, build_config
    from envs import make_env, permit_env_module

    spec = RLRunSpec(algorithm=algorithm, env=env, overrides=dict(overrides or {}))
    ckpt = root / "checkpoints" / "iter_000001"
    ckpt.mkdir(parents=True)
    if weights is None:
        from envs import ids

        permit_env_module(env)
        config = build_config(spec)
        made = make_env({"env_id": env, **config.env_config})
        weights = config.get_rl_module_spec(env=made).build().state_dict()
        made.close()
        ids._PERMITTED_MODULES.clear()  # the checkpoint's reader has named nothing yet
    torch.save(weights, ckpt / WEIGHTS_FILE)
    state = {"spec": dataclasses.asdict(spec), "state": {"iteration": 1}}
    (ckpt / STATE_FILE).write_text(json.dumps(state))
    return ckpt


def _store_spec(ckpt: Path, **changes: Any) -> None:
    """Rewrite the checkpoint's stored run spec (what a crafted file would say)."""
    from algorithms.checkpoints import STATE_FILE

    state = json.loads((ckpt / STATE_FILE).read_text())
    state["spec"].update(changes)
    (ckpt / STATE_FILE).write_text(json.dumps(state))


def _deflated_bomb(path: Path, inflated: int) -> None:
    """A torch-shaped archive whose one storage entry inflates to ``inflated`` bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        with z.open("archive/data/0", "w", force_zip64=True) as entry:
            block = bytes(1 << 20)
            for _ in range(inflated >> 20):
                entry.write(block)
    assert path.stat().st_size < inflated // 100


def _weights_with(change: str) -> Any:
    import torch

    from algorithms.configure import RLRunSpec, build_config
    from envs import make_env

    config = build_config(RLRunSpec(algorithm="reinforce", env="CartPole-v1"))
    made = make_env({"env_id": "CartPole-v1", **config.env_config})
    state = config.get_rl_module_spec(env=made).build().state_dict()
    made.close()
    name = next(iter(state))
    if change == "extra":
        state["smuggled"] = torch.zeros(3)
    elif change == "missing":
        del state[name]
    elif change == "shape":
        state[name] = torch.zeros(*state[name].shape[:-1], state[name].shape[-1] + 1)
    elif change == "not tensors":
        return {"a": [1, 2, 3]}
    return state


SPEC_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("env from a module", {"env": "os:Foo-v0"}, "pass --env-module os"),
    ("env from a test module", {"env": "tests.hostile_envs:Steps-v0"},
     "--env-module tests.hostile_envs"),
    ("callbacks class", {"overrides": {"callbacks_class": "os.system"}}, "does not let a run set"),
    ("worker environment", {"overrides": {"extra_python_environs_for_worker": {"A": "b"}}},
     "does not let a run set"),
    ("unknown key", {"overrides": {"frobnicate": 1}}, "unknown reinforce config key"),
    ("width 10**6", {"overrides": {"model_hiddens": [1000000]}}, "each width must be <= 4096"),
    ("width 4096 x 8", {"overrides": {"model_hiddens": [4096] * 8}}, "weights between"),
    ("frame stack 10**6", {"overrides": {"frame_stack": 10**6}}, "frame_stack=1000000"),
    ("nan gamma", {"overrides": {"gamma": float("nan")}}, "finite number"),
    ("seed 2**64", {"seed": 2**64}, "out of range"),
    ("overrides a list", {"overrides": [1, 2]}, "not a mapping"),
    ("env not text", {"env": 3}, "has no run spec"),
    ("unknown algorithm", {"algorithm": "evil"}, "unknown algorithm"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "changes", "needle"), SPEC_CASES, ids=[c[0] for c in SPEC_CASES])
def test_crafted_run_spec_is_refused(tmp_path, case, changes, needle):
    import rlgen

    ckpt = _checkpoint(tmp_path / "run")
    _store_spec(ckpt, **changes)
    before = _files(tmp_path)
    started = time.perf_counter()
    with pytest.raises(rlgen.UserError) as caught:
        rlgen.evaluate(ckpt, episodes=1)
    message = str(caught.value)
    assert "\n" not in message and needle in message, (case, message)
    assert time.perf_counter() - started < 30, "refused only after heavy work"
    assert _files(tmp_path) == before


WEIGHT_CASES = [
    ("extra tensor", "extra", "unexpected tensor smuggled"),
    ("missing tensor", "missing", "no tensor"),
    ("wrong shape", "shape", "has shape"),
    ("not tensors", "not tensors", "not a dict of tensors"),
]


@pytest.mark.parametrize(
    ("case", "change", "needle"), WEIGHT_CASES, ids=[c[0] for c in WEIGHT_CASES]
)
def test_weights_that_do_not_fit_are_refused(tmp_path, case, change, needle):
    import rlgen

    ckpt = _checkpoint(tmp_path / "run", weights=_weights_with(change))
    with pytest.raises(rlgen.UserError) as caught:
        rlgen.evaluate(ckpt, episodes=1)
    assert needle in str(caught.value), (case, str(caught.value))


@pytest.mark.parametrize("inflated_mb", [64, 400])
def test_deflated_weights_bomb_is_refused_before_reading(tmp_path, inflated_mb):
    """A few hundred KB that unpack to hundreds of MB: refused from the archive's directory,
    and the process's peak memory does not grow by the inflated size."""
    from algorithms.checkpoints import WEIGHTS_FILE

    ckpt = _checkpoint(tmp_path / "run")
    _deflated_bomb(ckpt / WEIGHTS_FILE, inflated_mb << 20)
    code = (
        "import resource, rlgen\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        f"    rlgen.evaluate({str(ckpt)!r}, episodes=1)\n"
        "except rlgen.UserError as exc:\n"
        "    print('refused:', exc)\n"
        "print('grew_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    assert "refused:" in proc.stdout and "is compressed" in proc.stdout, proc.stdout + proc.stderr
    grew_kb = int(proc.stdout.split("grew_kb")[1])
    assert grew_kb < (inflated_mb << 10) // 2, grew_kb


def test_checkpoint_env_module_is_never_imported(tmp_path):
    """A checkpoint naming a module on the import path (with a side effect on import): eval
    refuses it and says how to pass the module; the module never ran. Named by the user with
    --env-module, it is imported (and then the unknown env id is the next refusal)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    marker = tmp_path / "imported"
    (lib / "sideeffect_env.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    ckpt = _checkpoint(tmp_path / "run")
    _store_spec(ckpt, env="sideeffect_env:Nothing-v0")
    env = {"PYTHONPATH": str(lib)}
    proc = run_cli("eval", str(ckpt), "--episodes", "1", cwd=lib, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "--env-module sideeffect_env" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not marker.exists()
    proc = run_cli(
        "eval", str(ckpt), "--episodes", "1", "--env-module", "sideeffect_env", cwd=lib, env=env
    )
    assert proc.returncode == 2 and marker.exists(), proc.stderr


def test_env_module_named_by_the_user_evaluates(tmp_path):
    """The refusal is not a blanket one: with the module named, the same checkpoint is
    evaluated (every Steps game returns its length)."""
    import rlgen
    from tests.hostile_envs import LENGTH

    ckpt = _checkpoint(tmp_path / "run", env="tests.hostile_envs:Steps-v0")
    result = rlgen.evaluate(ckpt, episodes=2, env_module="tests.hostile_envs")
    assert result.greedy_return_mean == LENGTH == result.sampling_return_mean
