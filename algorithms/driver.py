"""The RL job around an RLlib Algorithm: config from CLI input, the training loop with stop
criteria, TensorBoard (x-axis = env steps), checkpoints, ``--resume``, result.json, and eval."""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from algorithms import ALGORITHMS
from algorithms.common import metrics as M
from runkit.errors import UserError
from runkit.rundir import RESULT_FILE, RUN_FILE, read_json, write_json_atomic

STATE_FILE = "rlgen_state.json"
CHECKPOINTS = "checkpoints"
KEEP_CHECKPOINTS = 2
DEFAULT_MAX_ENV_STEPS = 1_000_000
MODULE_SUBDIR = Path("learner_group") / "learner" / "rl_module" / "default_policy"


@dataclasses.dataclass
class RLRunSpec:
    """Everything a run was asked for; saved as run.json so ``--resume`` rebuilds it."""

    algorithm: str
    env: str
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    num_env_runners: int | None = None
    num_envs_per_env_runner: int | None = None
    seed: int | None = None
    stop_reward: float | None = None
    max_env_steps: int | None = None
    time_budget_s: float | None = None
    checkpoint_every: int = 10
    video_frames: int = 600  # greedy evaluation episode into TensorBoard at the end; 0 = none


def config_class(algorithm: str) -> type:
    import logging

    module, _, name = ALGORITHMS[algorithm].partition(":")
    cls = getattr(importlib.import_module(module), name)
    # RLlib resets its loggers on import; keep its advice ("new API stack ...") off the terminal.
    for logger in ("ray.rllib", "ray.tune", "ray.train"):
        logging.getLogger(logger).setLevel(logging.ERROR)
    return cls


def _settable_keys(config: Any) -> set[str]:
    """The config's plain data fields, plus properties with a setter (such as
    ``train_batch_size_per_learner``); deprecated names raise when read and are left out."""
    keys = {k for k, v in vars(config).items() if not k.startswith("_") and not callable(v)}
    for cls in type(config).__mro__:
        for name, attr in vars(cls).items():
            if isinstance(attr, property) and attr.fset is not None and not name.startswith("_"):
                try:
                    getattr(config, name)
                except Exception:  # noqa: BLE001 - a deprecated property raises on access
                    continue
                keys.add(name)
    return keys


def build_config(spec: RLRunSpec) -> Any:
    """The validated AlgorithmConfig, or a UserError naming the bad key or value."""
    import gymnasium as gym

    from envs import make_env, rllib_env_name

    config = config_class(spec.algorithm)()
    if spec.env.startswith("ALE/") and hasattr(config, "atari_defaults"):
        config.atari_defaults()
    if spec.num_env_runners is not None:
        config.env_runners(num_env_runners=spec.num_env_runners)
    if spec.num_envs_per_env_runner is not None:
        config.env_runners(num_envs_per_env_runner=spec.num_envs_per_env_runner)
    if spec.seed is not None:
        config.debugging(seed=spec.seed)
    allowed = _settable_keys(config)
    for key, value in spec.overrides.items():
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UserError(f"--set {key}: unknown {spec.algorithm} config key{hint}")
        try:
            setattr(config, key, value)
        except (AttributeError, TypeError, ValueError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(f"--set {key}={value!r}: cannot be set ({reason})") from None
    env_config: dict[str, Any] = {"training": True}
    for key in ("frame_stack", "sticky_actions"):  # Atari preset options, where the config has them
        if hasattr(config, key):
            env_config[key] = getattr(config, key)
    if getattr(config, "rollout_backend", "python") == "vector":
        if not spec.env.startswith("ALE/"):
            raise UserError(f"--set rollout_backend=vector: only for ALE/... envs, not {spec.env}")
        env_config["backend"] = "vector"
        config.env_runners(gym_env_vectorize_mode=gym.VectorizeMode.VECTOR_ENTRY_POINT)
    config.environment(rllib_env_name(spec.env), env_config=env_config)
    env = make_env({"env_id": spec.env, **env_config})
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    if not isinstance(act_space, (gym.spaces.Discrete, gym.spaces.Box)):
        raise UserError(f"--env {spec.env}: action space {act_space} is not Discrete or Box")
    if hasattr(config, "check_spaces"):
        try:
            config.check_spaces(obs_space, act_space)
        except ValueError as exc:
            raise UserError(f"--env {spec.env}: {exc}") from None
    try:
        config.validate()
    except (ValueError, TypeError, KeyError) as exc:
        raise UserError(f"invalid {spec.algorithm} config: {str(exc).splitlines()[0]}") from None
    return config


def init_ray() -> None:
    """Join the cluster named by RAY_ADDRESS (or the one started on this node with
    ``ray start``), else start an embedded local instance."""
    import logging

    import ray

    if not ray.is_initialized():
        ray.init(logging_level=logging.ERROR, log_to_driver=False)


def use_gpu_learner_if_present(config: Any, spec: RLRunSpec) -> None:
    """GPU use is automatic: a cluster with a GPU gets the Learner on it, unless the user set
    ``num_gpus_per_learner`` themselves (``--set num_gpus_per_learner=0`` keeps it on CPU)."""
    import ray

    if "num_gpus_per_learner" in spec.overrides:
        return
    if ray.cluster_resources().get("GPU", 0) >= max(1, config.num_learners):
        config.learners(num_gpus_per_learner=1)


def warn_if_actors_exceed_cpus(config: Any) -> None:
    """Ray holds an actor back until its CPUs are free: say so when the rollout actors ask for
    more CPUs than the cluster has now, instead of leaving the run to wait in silence."""
    import ray

    need = config.num_env_runners * config.num_cpus_per_env_runner
    have = ray.cluster_resources().get("CPU", 0)
    if need > have:
        print(
            f"rlgen: {config.num_env_runners} rollout actors x {config.num_cpus_per_env_runner} "
            f"CPU need {need:g} CPUs and this cluster has {have:g}; the run waits until CPUs "
            f"join (or --set num_cpus_per_env_runner={have / config.num_env_runners:g})",
            file=sys.stderr,
        )


def latest_checkpoint(path: Path) -> Path:
    """Accept a checkpoint directory or a run directory; return the newest checkpoint in it."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"checkpoint {path}: no such file or directory")
    if (path / STATE_FILE).is_file():
        return path
    found = sorted((path / CHECKPOINTS).glob("iter_*")) if (path / CHECKPOINTS).is_dir() else []
    found = [p for p in found if (p / STATE_FILE).is_file()]
    if not found:
        raise UserError(f"checkpoint {path}: not an rlgen checkpoint or run directory")
    return found[-1]


def _get(result: dict, *keys: str, default: float = math.nan) -> float:
    for key in keys:
        if not isinstance(result, dict) or key not in result:
            return default
        result = result[key]
    try:
        return float(result)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def tensorboard_scalars(result: dict, env_steps_per_s: float) -> dict[str, float]:
    runners = result.get("env_runners", {})
    learner = result.get("learners", {}).get("default_policy", {})
    values = {
        "episode_return_mean": _get(result, "game_return_mean"),
        "training_return_mean": _get(runners, "episode_return_mean"),
        "episode_return_min": _get(runners, "episode_return_min"),
        "episode_return_max": _get(runners, "episode_return_max"),
        "episode_len_mean": _get(runners, "episode_len_mean"),
        M.ENV_STEPS_PER_S: env_steps_per_s,
        M.MOVING_AVERAGE_BASELINE: _get(result, M.MOVING_AVERAGE_BASELINE),
        M.GRAD_NORM: _get(result, "learners", M.GRAD_NORM),
    }
    for key in M.LEARNER_KEYS:
        values[key] = _get(learner, key)
    for key in M.DRIVER_KEYS:
        values[key] = _get(result, key)
    # Keys an algorithm does not log come out NaN and are skipped by the writer.
    return {M.TB_TAGS[k]: v for k, v in values.items()}


class Progress:
    """One terminal line per iteration, at most once a second, and always the last one."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._last = 0.0

    def __call__(self, state: dict, rate: float, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 1.0:
            return
        self._last = now
        print(
            f"[{self.label}] iter {state['iteration']:4d} | env steps {state['env_steps']:>9,d} | "
            f"return {state['episode_return_mean']:8.2f} (best {state['best']:8.2f}) | "
            f"{rate:7.0f} steps/s | {state['wall_time_s']:7.1f} s",
            file=sys.stderr,
            flush=True,
        )


def _save_checkpoint(algo: Any, run_dir: Path, spec: RLRunSpec, state: dict) -> Path:
    ckpt_root = run_dir / CHECKPOINTS
    ckpt_root.mkdir(exist_ok=True)
    target = ckpt_root / f"iter_{state['iteration']:06d}"
    tmp = ckpt_root / f".tmp_{target.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    algo.save_to_path(str(tmp.resolve()))
    write_json_atomic(tmp / STATE_FILE, {"spec": dataclasses.asdict(spec), "state": state})
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    for old in sorted(ckpt_root.glob("iter_*"))[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def train(spec: RLRunSpec, run_dir: Path, *, resume: bool) -> dict[str, Any]:
    """Train until stop-reward, max env steps or time budget; return result.json's dict."""
    from envs import check_env_id

    if spec.stop_reward is None:
        spec.stop_reward = check_env_id(spec.env).reward_threshold
    if spec.max_env_steps is None and spec.time_budget_s is None:
        spec.max_env_steps = DEFAULT_MAX_ENV_STEPS
    config = build_config(spec)
    ckpt = latest_checkpoint(run_dir) if resume else None
    state: dict[str, Any] = {
        "iteration": 0,
        "env_steps": 0,
        "wall_time_s": 0.0,
        "episode_return_mean": math.nan,
        "best": -math.inf,
    }
    if ckpt is not None:
        state = read_json(ckpt / STATE_FILE)["state"]
    write_json_atomic(run_dir / RUN_FILE, {"kind": "rl", "spec": dataclasses.asdict(spec)})

    from runkit.tb import ScalarWriter

    init_ray()
    use_gpu_learner_if_present(config, spec)
    warn_if_actors_exceed_cpus(config)
    algo = config.build_algo()
    if ckpt is not None:
        try:
            algo.restore_from_path(str(ckpt))
        except Exception as exc:  # noqa: BLE001 - any failure here means a bad checkpoint
            raise UserError(
                f"checkpoint {ckpt}: cannot be restored ({type(exc).__name__})"
            ) from None
    writer = ScalarWriter(run_dir / "tensorboard")
    progress = Progress(f"{spec.algorithm} {spec.env}")
    start_wall, start_steps = state["wall_time_s"], state["env_steps"]
    t0 = time.monotonic()
    last_t, last_steps = t0, state["env_steps"]
    ckpt_path = ckpt
    solved = False
    while True:
        result = algo.train()
        now = time.monotonic()
        state["iteration"] += 1
        state["env_steps"] = int(
            _get(result, "env_runners", "num_env_steps_sampled_lifetime", default=0)
        )
        state["wall_time_s"] = start_wall + (now - t0)
        ret = _get(result, "game_return_mean")  # last 100 games, unclipped
        if math.isfinite(ret):
            state["episode_return_mean"] = ret
            state["best"] = max(state["best"], ret)
        rate = (state["env_steps"] - last_steps) / max(now - last_t, 1e-9)
        last_t, last_steps = now, state["env_steps"]
        writer.scalars(tensorboard_scalars(result, rate), step=state["env_steps"])
        solved = spec.stop_reward is not None and state["episode_return_mean"] >= spec.stop_reward
        done = (
            solved
            or (spec.max_env_steps is not None and state["env_steps"] >= spec.max_env_steps)
            or (spec.time_budget_s is not None and state["wall_time_s"] >= spec.time_budget_s)
        )
        progress(state, rate, force=done)
        if done or state["iteration"] % spec.checkpoint_every == 0:
            ckpt_path = _save_checkpoint(algo, run_dir, spec, state)
        if done:
            break
    if spec.video_frames > 0 and ckpt_path is not None:
        from algorithms.evaluate import tensorboard_video

        try:
            tensorboard_video(
                ckpt_path, writer, step=state["env_steps"], max_frames=spec.video_frames
            )
        except Exception as exc:  # noqa: BLE001 - the trained run and its results come first
            print(f"rlgen: no evaluation video in TensorBoard ({exc})", file=sys.stderr)
    writer.close()
    algo.stop()
    elapsed = state["wall_time_s"] - start_wall
    result_json = {
        M.ALGORITHM: spec.algorithm,
        M.ENV: spec.env,
        M.ENV_STEPS: state["env_steps"],
        M.WALL_TIME_S: round(state["wall_time_s"], 3),
        M.EPISODE_RETURN_MEAN: state["episode_return_mean"],
        M.BEST_EPISODE_RETURN_MEAN: state["best"],
        M.SOLVED: bool(solved),
        M.ENV_STEPS_PER_S: round((state["env_steps"] - start_steps) / max(elapsed, 1e-9), 2),
        M.CHECKPOINT: str(ckpt_path),
        M.TENSORBOARD_DIR: str(run_dir / "tensorboard"),
    }
    write_json_atomic(run_dir / RESULT_FILE, result_json)
    return result_json
