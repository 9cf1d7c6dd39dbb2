"""The RL run loop: ``algo.train()`` until a stop criterion, with TensorBoard (x-axis = env
steps), checkpoints, ``--resume``, the caller's per-iteration callback, and result.json.

The loop runs in the caller's process, which is also the Algorithm process: RLlib's Algorithm
(its ``training_step``, the local rollout env when there are no rollout actors, and the Learner
when there are no remote Learners) lives here; rollout actors and remote Learners are Ray
actors.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

from algorithms.checkpoints import STATE_FILE, find_checkpoint, load_encoder, save_checkpoint
from algorithms.common import metrics as M
from algorithms.configure import Importer, RLRunSpec, actor_cpus, build_config
from envs import permit_env_module
from runkit import cluster
from runkit.errors import RunFailed, UserError, first_line
from runkit.progress import ProgressLine
from runkit.results import STOP_BY_CALLBACK, OnReport, Report, RLResult, write_result
from runkit.rundir import open_run, read_json, write_spec

RESUMABLE = ("stop_reward", "max_env_steps", "time_budget_s", "num_env_runners", "video_frames")


# Imported while Ray starts: torch's compiler stack (loaded by the first optimizer call, ~2 s)
# and what the run imports after the start (TensorBoard's writer, the evaluation video and the
# renderer of gymnasium's classic-control envs).
PRELOAD = ("torch._dynamo", "runkit.tb", "algorithms.evaluate", "imageio.v2", "pygame")


def train(
    algorithm: str,
    *,
    env: str | None,
    overrides: dict[str, Any],
    output: str | Path | None = None,
    resume: bool = False,
    on_report: OnReport | None = None,
    start_from: Path | None = None,
    importer: Importer | None = None,
    **limits: Any,
) -> RLResult:
    """A fresh run, or with ``resume`` the run in ``output`` continued; ``limits`` are the
    other ``RLRunSpec`` fields (stop_reward, max_env_steps, time_budget_s, seed, ...).
    ``start_from``: continue from this checkpoint instead of the run's newest (with ``resume``;
    a Population Based Training exploit starts from a better trial's checkpoint).
    ``importer``: reads another job's output a key names (``encoder``) when the run starts."""
    unknown = sorted(set(limits) - set(RLRunSpec.__dataclass_fields__))
    if unknown:
        raise UserError(f"train {algorithm}: {', '.join(unknown)} is not an RL run setting")

    def fresh() -> RLRunSpec:
        if not env:
            raise UserError("train: --env is required (e.g. --env CartPole-v1)")
        given = {k: v for k, v in limits.items() if v is not None}
        return RLRunSpec(algorithm=algorithm, env=env, overrides=dict(overrides), **given)

    config: Any = None  # built and checked once, frozen, handed to run() as it is

    def prepare(spec: RLRunSpec) -> None:
        nonlocal config
        # The env the user gave, or the one of a run directory of their own being resumed (which
        # --resume trusts as it trusts RLlib's pickles in it): its module may be imported.
        permit_env_module(spec.env)
        # Every key and value checked (and the spec's defaults filled) before anything is written.
        config = build_config(spec, frozen=True, importer=importer)

    given = {k: limits.get(k) for k in RESUMABLE}
    spec, run_dir = open_run(
        RLRunSpec,
        kind="rl",
        job=algorithm,
        job_field="algorithm",
        output=output,
        resume=resume,
        fresh=fresh,
        prepare=prepare,
        prefix=lambda s: f"{s.algorithm}-{s.env.replace('/', '_')}",
        given={**given, "env": env, "overrides": overrides},
        keep=("env",),
        write_on_resume=False,  # run() writes it once the checkpoint has loaded
        ready=lambda spec: connect_for(config, spec),
    )
    return run(
        spec, run_dir, resume=resume, on_report=on_report, config=config, start_from=start_from
    )


def connect_for(config: Any, spec: RLRunSpec) -> None:
    """Ray, before the run writes anything: actors the cluster cannot hold are refused there
    (on an instance started here; a warning on a cluster joined)."""
    cluster.connect(preload=PRELOAD)
    cluster.check_cpus(
        *actor_cpus(placed(config, spec)),
        hint="--set num_cpus_per_env_runner=... or num_cpus_per_learner=...",
    )


def placed(config: Any, spec: RLRunSpec) -> Any:
    """The one change to the checked config, on a frozen copy (the checked one stays as it is):
    where the Learners run, decided once the cluster is known. Automatic: a GPU per Learner
    where the cluster has them and a GPU speeds the Learner up (``learner_gpu_pays``), unless
    ``--set num_gpus_per_learner`` says (0 keeps the Learners on CPU, 1 puts an MLP on a GPU)."""
    config = config.copy(copy_frozen=False)
    pays = "num_gpus_per_learner" not in spec.overrides and config.learner_gpu_pays()
    if pays and cluster.decide_gpu("auto", max(1, config.num_learners)):
        config.learners(num_gpus_per_learner=1)
    config.freeze()
    return config


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
        M.NONFINITE_UPDATES: _get(result, "learners", M.NONFINITE_UPDATES),
    }
    for key in M.LEARNER_KEYS:
        values[key] = _get(learner, key)
    for key in M.ALGORITHM_KEYS:
        values[key] = _get(result, key)
    # Keys an algorithm does not log come out NaN and are skipped by the writer.
    return {M.TB_TAGS[k]: v for k, v in values.items()}


def _progress_text(state: dict, rate: float) -> str:
    return (
        f"iter {state['iteration']:4d} | env steps {state['env_steps']:>9,d} | "
        f"return {state['episode_return_mean']:8.2f} (best {state['best']:8.2f}) | "
        f"{rate:7.0f} steps/s | {state['wall_time_s']:7.1f} s"
    )


def _stop_reason(spec: RLRunSpec, state: dict) -> str | None:
    if spec.stop_reward is not None and state["episode_return_mean"] >= spec.stop_reward:
        return "solved"
    if spec.max_env_steps is not None and state["env_steps"] >= spec.max_env_steps:
        return "max_env_steps"
    if spec.time_budget_s is not None and state["wall_time_s"] >= spec.time_budget_s:
        return "time_budget"
    return None


def run(
    spec: RLRunSpec,
    run_dir: Path,
    *,
    resume: bool,
    on_report: OnReport | None = None,
    config: Any = None,
    start_from: Path | None = None,
) -> RLResult:
    """Train until stop-reward, max env steps, time budget or the callback; return the result
    (also written as result.json). ``config``: the spec's config when the caller has built it
    already (``train`` has, to check the input before the run directory exists). With
    ``resume``, training continues from ``start_from`` or else the run's newest checkpoint;
    the weights and optimizer state come from the checkpoint, every setting from ``spec``."""
    from runkit.tb import ScalarWriter

    if config is None:
        config = build_config(spec, frozen=True)
    ckpt = (start_from or find_checkpoint(run_dir)) if resume else None
    state = _start_state(ckpt)
    algo = _start_algo(config, spec, ckpt)
    if resume:
        write_spec(run_dir, "rl", spec)
    writer = ScalarWriter(
        run_dir / "tensorboard", resumed_at=None if ckpt is None else state["env_steps"]
    )
    loop = _Loop(spec, run_dir, algo, writer, state, ckpt, on_report, config)
    try:
        while loop.reason is None:
            loop.iterate()
    finally:
        algo.stop()
    return _finish(loop)


def _start_state(ckpt: Path | None) -> dict[str, Any]:
    """The run loop's counters: zero, or those saved with the checkpoint it continues from."""
    if ckpt is None:
        return {
            "iteration": 0,
            "env_steps": 0,
            "wall_time_s": 0.0,
            "episode_return_mean": math.nan,
            "best": -math.inf,
        }
    state: dict[str, Any] = read_json(ckpt / STATE_FILE)["state"]
    print(
        f"rlgen: resuming from {ckpt} (iteration {state['iteration']}, "
        f"{state['env_steps']:,} env steps)",
        file=sys.stderr,
    )
    return state


def _start_algo(config: Any, spec: RLRunSpec, ckpt: Path | None) -> Any:
    """Ray connected, the Algorithm built (its Learner on a GPU where the cluster has one) and
    restored from ``ckpt``; a checkpoint that cannot be restored is a UserError."""
    cluster.connect(preload=PRELOAD)  # connected already by train() (connect_for)
    config = placed(config, spec)
    algo = config.build_algo()
    if ckpt is None:
        load_encoder(algo, config.encoder_weights())
    else:
        try:
            algo.restore_from_path(str(ckpt))
        except Exception as exc:  # noqa: BLE001 - any failure here means a bad checkpoint
            algo.stop()
            raise UserError(
                f"checkpoint {ckpt}: cannot be restored ({type(exc).__name__}: "
                f"{first_line(exc)[:200]}); the run directory is left as it was"
            ) from None
    return algo


class _Loop:
    """One run's iterations: the counters saved with each checkpoint (``state``), the clock,
    the newest checkpoint, and why the run stops (``reason``, None while it goes on)."""

    def __init__(
        self,
        spec: RLRunSpec,
        run_dir: Path,
        algo: Any,
        writer: Any,
        state: dict[str, Any],
        ckpt: Path | None,
        on_report: OnReport | None,
        config: Any,
    ) -> None:
        self.spec, self.run_dir, self.algo, self.writer = spec, run_dir, algo, writer
        self.state, self.on_report, self.config = state, on_report, config
        self.progress = ProgressLine(f"{spec.algorithm} {spec.env}")
        self.start_wall, self.start_steps = state["wall_time_s"], state["env_steps"]
        self.t0 = time.monotonic()
        self.last_t, self.last_steps = self.t0, state["env_steps"]
        self.ckpt_path = ckpt
        self.reason: str | None = None

    def iterate(self) -> None:
        """One ``algo.train()`` and its bookkeeping: counters, TensorBoard, the non-finite
        abort, the stop rule, the checkpoint, the caller's report, the progress line."""
        spec, state = self.spec, self.state
        result = self.algo.train()
        scalars, rate = self._record(result)
        if _get(result, "learners", M.NONFINITE_ABORT, default=0.0) > 0:
            self.writer.flush()
            raise RunFailed(
                f"{spec.algorithm}: {self.config.max_nonfinite_updates} non-finite updates in a "
                "row (NaN/inf loss or gradient; max_nonfinite_updates); stopped without saving; "
                f"the last good checkpoint is {self.ckpt_path or 'none (no checkpoint yet)'}"
            )
        self.reason = _stop_reason(spec, state)
        saved = self.reason is not None or state["iteration"] % spec.checkpoint_every == 0
        if saved:
            self.writer.flush()  # every step up to a checkpoint is on disk before it
            self.ckpt_path = save_checkpoint(self.algo, self.run_dir, spec, state)
        if self.on_report is not None:
            report = Report(
                job=spec.algorithm,
                iteration=state["iteration"],
                step=state["env_steps"],
                metrics={**state, **{k: v for k, v in scalars.items() if math.isfinite(v)}},
                checkpoint=str(self.ckpt_path) if saved else None,
                last=self.reason is not None,
            )
            if self.on_report(report) and self.reason is None:
                self.reason = STOP_BY_CALLBACK
                if not saved:
                    self.ckpt_path = save_checkpoint(self.algo, self.run_dir, spec, state)
        self.progress(_progress_text(state, rate), force=self.reason is not None)

    def _record(self, result: dict) -> tuple[dict[str, float], float]:
        """The iteration's counters and TensorBoard scalars; (scalars, env steps per second)."""
        state = self.state
        now = time.monotonic()
        state["iteration"] += 1
        state["env_steps"] = int(
            _get(result, "env_runners", "num_env_steps_sampled_lifetime", default=0)
        )
        state["wall_time_s"] = self.start_wall + (now - self.t0)
        ret = _get(result, "game_return_mean")  # last 100 games, unclipped
        if math.isfinite(ret):
            state["episode_return_mean"] = ret
            state["best"] = max(state["best"], ret)
        rate = (state["env_steps"] - self.last_steps) / max(now - self.last_t, 1e-9)
        self.last_t, self.last_steps = now, state["env_steps"]
        scalars = tensorboard_scalars(result, rate)
        self.writer.scalars(scalars, step=state["env_steps"])
        return scalars, rate


def _finish(loop: _Loop) -> RLResult:
    """The end of a run: the evaluation video into TensorBoard, then result.json."""
    spec, state, writer, ckpt_path = loop.spec, loop.state, loop.writer, loop.ckpt_path
    if spec.video_frames > 0 and ckpt_path is not None:
        from algorithms.evaluate import tensorboard_video

        try:
            tensorboard_video(
                ckpt_path, writer, step=state["env_steps"], max_frames=spec.video_frames
            )
        except Exception as exc:  # noqa: BLE001 - the trained run and its results come first
            print(f"rlgen: no evaluation video in TensorBoard ({exc})", file=sys.stderr)
    writer.close()
    elapsed = state["wall_time_s"] - loop.start_wall
    out = RLResult(
        algorithm=spec.algorithm,
        env=spec.env,
        env_steps=state["env_steps"],
        wall_time_s=round(state["wall_time_s"], 3),
        episode_return_mean=state["episode_return_mean"],
        best_episode_return_mean=state["best"],
        solved=loop.reason == "solved",
        env_steps_per_s=round((state["env_steps"] - loop.start_steps) / max(elapsed, 1e-9), 2),
        checkpoint=None if ckpt_path is None else str(ckpt_path),
        tensorboard_dir=str(loop.run_dir / "tensorboard"),
        stop_reason=str(loop.reason),
        run_dir=str(loop.run_dir),
    )
    write_result(loop.run_dir, out)
    return out
