"""``rlgen eval``: the trained policy, greedy and sampling, on fresh episodes of its env."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import gymnasium as gym
import numpy as np

from algorithms.checkpoints import STATE_FILE, WEIGHTS_FILE, find_checkpoint
from runkit.errors import UserError
from runkit.results import EvalResult
from runkit.rundir import read_json

if TYPE_CHECKING:
    import numpy.typing as npt


def load_policy(checkpoint: str | Path, *, env_module: str | None = None) -> tuple[Any, dict]:
    """The policy module and the run spec of a checkpoint (or a run directory's newest).

    The module is rebuilt from the run spec (rlgen's JSON, every key and value checked as for a
    new run) and its weights read with ``runkit.weights.load_checked``: sizes bounded before
    reading, ``torch.load(weights_only=True)``, names and shapes compared with the module.
    RLlib's pickled files in the checkpoint are not read. A spec whose env id names a module
    (``package.module:EnvId``) is refused unless ``env_module`` names that module: rlgen never
    imports what a file names."""
    import logging

    from algorithms.configure import RLRunSpec, build_config
    from envs import make_env
    from runkit.weights import BadWeights, load_checked

    logging.getLogger("ray.rllib").setLevel(logging.ERROR)
    ckpt = find_checkpoint(checkpoint).resolve()
    spec = _stored_spec(ckpt, env_module)
    try:
        run_spec = RLRunSpec(**spec)
    except TypeError as exc:
        raise UserError(
            f"checkpoint {ckpt}: {STATE_FILE} does not fit this rlgen ({exc})"
        ) from None
    if not isinstance(run_spec.overrides, dict):
        raise UserError(f"checkpoint {ckpt}: {STATE_FILE} has overrides that are not a mapping")
    try:
        config = build_config(run_spec)
    except UserError as exc:
        raise UserError(f"checkpoint {ckpt}: its run spec is refused: {exc}") from None
    logging.getLogger("ray.rllib").setLevel(logging.ERROR)  # RLlib's import sets it again
    env = make_env({"env_id": run_spec.env, **config.env_config})
    try:
        module = config.get_rl_module_spec(env=env).build()
    finally:
        env.close()
    try:
        module.load_state_dict(load_checked(ckpt / WEIGHTS_FILE, module.state_dict()))
    except BadWeights as exc:
        raise UserError(
            f"checkpoint {ckpt}: {WEIGHTS_FILE} is not this policy's weights ({exc})"
        ) from None
    module.eval()
    return module, spec


def _stored_spec(ckpt: Path, env_module: str | None) -> dict:
    """The run spec in a checkpoint's state file, its env's module permitted (by
    ``env_module``) and its weights file present."""
    from envs import module_permitted, permit_env_module
    from envs.ids import env_module as env_module_of

    spec = read_json(ckpt / STATE_FILE).get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("env"), str):
        raise UserError(f"checkpoint {ckpt}: {STATE_FILE} has no run spec")
    if env_module:
        permit_env_module(env_module)
    if not module_permitted(spec["env"]):
        module = str(env_module_of(spec["env"]))
        raise UserError(
            f"checkpoint {ckpt}: its env {spec['env'][:80]} is registered by importing "
            f"{module[:60]}, and rlgen never imports a module a file names; if you trust it, "
            f"pass --env-module {module[:60]} (rlgen.evaluate(..., env_module=...))"
        )
    if not (ckpt / WEIGHTS_FILE).is_file():
        raise UserError(
            f"checkpoint {ckpt}: no {WEIGHTS_FILE} (written by an older rlgen); continue the run "
            "with --resume to write a new checkpoint"
        )
    return spec


def policy_action(module: Any, obs: np.ndarray, space: gym.Space, *, greedy: bool) -> Any:
    """One action from the module for one observation, mapped into the env's action space the
    way RLlib's EnvRunner does (Box: the policy acts in [-1, 1], unsquashed to [low, high])."""
    import torch
    from ray.rllib.utils.spaces.space_utils import unsquash_action

    batch = {"obs": torch.as_tensor(np.asarray(obs)[None])}
    with torch.no_grad():
        out = (
            module.forward_inference(batch)
            if greedy
            else module.forward_exploration(batch, t=10**12)
        )
    if "actions" in out:  # value-based modules act directly (greedy / final epsilon-greedy)
        return int(out["actions"][0])
    dist = module.get_inference_action_dist_cls().from_logits(out["action_dist_inputs"])
    if greedy:
        dist = dist.to_deterministic()
    action = dist.sample()[0].cpu().numpy()
    if isinstance(space, gym.spaces.Box):
        return np.clip(unsquash_action(action, space), space.low, space.high)
    return int(action)


def run_episodes(
    module: Any,
    env_id: str,
    *,
    episodes: int,
    greedy: bool,
    seed: int,
    env_options: dict | None = None,
) -> list[float]:
    """The returns of ``episodes`` games, the i-th reset with ``seed + i``. The sampling
    policy draws from torch's global generator: seeded with ``seed`` here, so the same seed
    plays the same games, and restored afterwards, so the caller's own draws are untouched."""
    import torch

    from envs import check_env_id, make_env

    check_env_id(env_id)
    env = make_env({"env_id": env_id, "training": False, **(env_options or {})})
    returns = []
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for i in range(episodes):
                obs, _ = env.reset(seed=seed + i)
                total, done = 0.0, False
                while not done:
                    obs, reward, terminated, truncated, _ = env.step(
                        policy_action(module, obs, env.action_space, greedy=greedy)
                    )
                    total += float(reward)
                    done = terminated or truncated
                returns.append(total)
    finally:
        env.close()
    return returns


VIDEO_SUFFIXES = (".gif", ".mp4")
VIDEO_FPS = 30
VIDEO_MAX_FRAMES = 10_000


def greedy_episode_frames(
    module: Any, env_id: str, *, seed: int, env_options: dict, max_frames: int = VIDEO_MAX_FRAMES
) -> list[np.ndarray]:
    """The rendered RGB frames of one greedy evaluation episode (full game for Atari), at most
    ``max_frames`` of them."""
    from envs import make_env

    # Frames drawn off screen: pygame (classic-control envs) needs no display or sound device,
    # and probing for them fills a server's terminal with errors.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    env = make_env({"env_id": env_id, "training": False, "render_mode": "rgb_array", **env_options})
    frames: list[np.ndarray] = []
    try:
        obs, _ = env.reset(seed=seed)
        # render_mode="rgb_array": one (H, W, 3) uint8 frame per call.
        frames.append(cast(np.ndarray, env.render()))
        done = False
        while not done and len(frames) < max_frames:
            action = policy_action(module, obs, env.action_space, greedy=True)
            obs, _, terminated, truncated, _ = env.step(action)
            frames.append(cast(np.ndarray, env.render()))
            done = terminated or truncated
    finally:
        env.close()
    return frames


def record_video(module: Any, env_id: str, path: Path, *, seed: int, env_options: dict) -> int:
    """Play one greedy evaluation episode and write its rendered frames to ``path``."""
    import imageio.v2 as imageio

    frames = greedy_episode_frames(module, env_id, seed=seed, env_options=env_options)
    # imageio's stub asks for List[ArrayLike], and list is invariant: the same list, retyped.
    ims = cast("list[npt.ArrayLike]", frames)
    # Written inside a fresh private directory beside the target (no name another user could
    # have planted a symlink at), then moved into place.
    work = Path(tempfile.mkdtemp(prefix=".video-", dir=path.parent))
    tmp = work / f"video{path.suffix}"
    try:
        if path.suffix == ".gif":
            imageio.mimsave(tmp, ims, duration=1000 / VIDEO_FPS, loop=0)
        else:
            imageio.mimsave(tmp, ims, fps=VIDEO_FPS, macro_block_size=1)
        tmp.replace(path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return len(frames)


def env_options_of(spec: dict) -> dict:
    """The Atari preset options a run was trained with, for its evaluation envs."""
    from envs import PRESET_OPTIONS

    overrides = spec.get("overrides", {})
    return {k: overrides[k] for k in PRESET_OPTIONS if k in overrides}


def tensorboard_video(checkpoint: Path, writer: Any, *, step: int, max_frames: int) -> int:
    """One greedy episode of the checkpoint's policy into TensorBoard (``eval/video``), frames
    scaled down to at most 320 pixels wide. Returns the number of frames."""
    import cv2

    module, spec = load_policy(checkpoint)
    frames = greedy_episode_frames(
        module, spec["env"], seed=0, env_options=env_options_of(spec), max_frames=max_frames
    )
    height, width = frames[0].shape[:2]
    if width > 320:
        size = (320, round(height * 320 / width))
        frames = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
    writer.video("eval/video", frames, step=step, fps=VIDEO_FPS)
    return len(frames)


MAX_EPISODES = 100_000


def evaluate(
    checkpoint: str | Path,
    *,
    episodes: int = 10,
    seed: int = 0,
    video: str | None = None,
    env_module: str | None = None,
) -> EvalResult:
    """Greedy and sampling returns of the checkpoint's policy over ``episodes`` fresh episodes
    each, and with ``video`` one greedy episode recorded to that file (.gif or .mp4).
    ``env_module``: the module to import for a checkpoint whose env id names one."""
    from runkit.checks import MAX_SEED, check_range

    try:
        check_range("--episodes", episodes, low=1, high=MAX_EPISODES, integer=True)
        check_range("--seed", seed, low=0, high=MAX_SEED - 2 * episodes, integer=True)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    video_path = Path(video) if video else None
    if video_path is not None:
        if video_path.suffix not in VIDEO_SUFFIXES:
            raise UserError(f"--video {video}: the file must end in .gif or .mp4")
        if video_path.exists():
            raise UserError(f"--video {video}: already exists; choose a new file")
        if not video_path.parent.is_dir():
            raise UserError(f"--video {video}: directory {video_path.parent} does not exist")
    module, spec = load_policy(checkpoint, env_module=env_module)
    env_options = env_options_of(spec)
    stats: dict[str, float] = {}
    for mode, greedy in (("greedy", True), ("sampling", False)):
        returns = run_episodes(
            module, spec["env"], episodes=episodes, greedy=greedy, seed=seed,
            env_options=env_options,
        )  # fmt: skip
        stats[f"{mode}_return_mean"] = float(np.mean(returns))
        stats[f"{mode}_return_std"] = float(np.std(returns))
    frames = None
    if video_path is not None:
        frames = record_video(module, spec["env"], video_path, seed=seed, env_options=env_options)
    return EvalResult(
        env=spec["env"],
        algorithm=spec.get("algorithm"),
        episodes=episodes,
        checkpoint=str(find_checkpoint(checkpoint)),
        video=None if video_path is None else str(video_path),
        video_frames=frames,
        **stats,
    )
