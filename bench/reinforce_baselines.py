"""Benchmark: REINFORCE's baselines on CartPole-v1, in one run on this machine.

1. Learning: for each baseline (none, moving_average, batch_mean, value) and 3 seeds, train with
   the default config until episode_return_mean >= 475 or a step budget; record env steps and
   wall time to 475 and the learning curve. Each baseline runs with the advantage normalization
   that keeps its meaning (``AUTO_NORMALIZATION``, the default's choice, written into the JSON):
   the constant baselines are scaled by the batch RMS and never centred, since centring would
   replace b by the batch mean; G - V(s) is centred and scaled, the batch mean being only a
   second baseline on top of the learned V.
2. Variance: at one fixed checkpoint (a value-baseline policy part-way trained), estimate the
   policy gradient many times from independent batches of fresh episodes and measure the spread
   of the estimates for each estimator of the lecture: r(tau) with no baseline, reward-to-go,
   reward-to-go minus a constant moving-average b, minus the batch's own mean return, and minus
   the learned V(s). All estimators see the same episodes (common random numbers) and no
   advantage normalization, so the differences come from the estimator alone.

Writes bench/results/reinforce_baselines.json and bench/results/reinforce_baselines.png.

    .venv/bin/python bench/reinforce_baselines.py [--seeds 3] [--max-env-steps 300000]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

import numpy as np
import torch

from algorithms.checkpoints import STATE_FILE, WEIGHTS_FILE, save_policy_weights
from algorithms.common import pg_losses as losses
from algorithms.common import returns as mc
from algorithms.evaluate import policy_action
from algorithms.reinforce.algorithm import AUTO_NORMALIZATION, BASELINES, ReinforceConfig
from envs.ids import CARTPOLE_SOLVED_RETURN

ENV = "CartPole-v1"
OUT = Path(__file__).resolve().parent / "results"


def train_run(baseline: str, seed: int, max_env_steps: int) -> dict:
    normalization = AUTO_NORMALIZATION[baseline]
    config = (
        ReinforceConfig()
        .environment(ENV)
        .training(baseline=baseline, advantage_normalization=normalization)
        .debugging(seed=seed)
    )
    algo = config.build_algo()
    curve, t0, solved_at = [], time.monotonic(), None
    try:
        while True:
            result = algo.train()
            steps = int(result["env_runners"]["num_env_steps_sampled_lifetime"])
            ret = float(result["game_return_mean"])  # mean of the last 100 episodes
            curve.append((steps, ret, time.monotonic() - t0))
            if ret >= CARTPOLE_SOLVED_RETURN:
                solved_at = curve[-1]
                break
            if steps >= max_env_steps:
                break
    finally:
        algo.stop()
    print(
        f"  {baseline:15s} ({normalization}) seed {seed}: "
        f"{'solved' if solved_at else 'not solved'} at "
        f"{curve[-1][0]:,} steps, {curve[-1][2]:.0f} s",
        flush=True,
    )
    return {
        "baseline": baseline,
        "advantage_normalization": normalization,
        "seed": seed,
        "solved": solved_at is not None,
        "env_steps_to_475": solved_at[0] if solved_at else None,
        "wall_time_s_to_475": round(solved_at[2], 2) if solved_at else None,
        "curve": curve,
    }


def reference_policy(target_return: float, seed: int) -> torch.nn.Module:
    """The policy and value net of a value-baseline run, checkpointed when its return first
    reaches ``target_return``, loaded back from that checkpoint."""
    from algorithms.evaluate import load_policy

    algo = ReinforceConfig().environment(ENV).debugging(seed=seed).build_algo()
    try:
        while not algo.train()["game_return_mean"] >= target_return:
            pass
        ckpt = OUT / "variance_checkpoint"
        algo.save_to_path(str(ckpt))
        save_policy_weights(algo, ckpt / WEIGHTS_FILE)  # what load_policy reads back
        spec = {"algorithm": "reinforce", "env": ENV}
        (ckpt / STATE_FILE).write_text(json.dumps({"spec": spec, "state": {}}))
    finally:
        algo.stop()
    module, _ = load_policy(ckpt)
    return module


def sample_episodes(module, env, n: int, rng: np.random.Generator) -> list[dict]:
    episodes = []
    for _ in range(n):
        obs, _ = env.reset(seed=int(rng.integers(2**31)))
        observations, actions, rewards, done = [], [], [], False
        while not done:
            action = policy_action(module, obs, env.action_space, greedy=False)
            observations.append(obs)
            actions.append(action)
            obs, reward, terminated, truncated, _ = env.step(action)
            rewards.append(float(reward))
            done = terminated or truncated
        episodes.append(
            {
                "obs": np.array(observations),
                "actions": np.array(actions),
                "rewards": np.array(rewards),
            }
        )
    return episodes


def gradient_estimates(module, batch: list[dict], gamma: float, b_const: float) -> dict:
    """The policy gradient from one batch under each estimator, as flat vectors."""
    obs = torch.as_tensor(np.concatenate([e["obs"] for e in batch]), dtype=torch.float32)
    acts = torch.as_tensor(np.concatenate([e["actions"] for e in batch]))
    rtg = torch.as_tensor(
        np.concatenate([mc.reward_to_go(e["rewards"], gamma=gamma) for e in batch])
    )
    whole = torch.as_tensor(
        np.concatenate([mc.total_return(e["rewards"], gamma=gamma) for e in batch])
    )
    with torch.no_grad():
        values = module.compute_values({"obs": obs})
    weights = {
        "r_tau_no_baseline": whole,
        "reward_to_go_no_baseline": rtg,
        "reward_to_go_moving_average": rtg - b_const,
        "reward_to_go_batch_mean": rtg - rtg.mean(),
        "reward_to_go_value": rtg - values,
    }
    params = list(module.pi.parameters())
    out = {}
    for name, adv in weights.items():
        logits = module.forward_train({"obs": obs})["action_dist_inputs"]
        logp = module.get_train_action_dist_cls().from_logits(logits).logp(acts)
        loss = losses.policy_gradient_loss(logp_B=logp, advantages_B=adv)
        grads = torch.autograd.grad(loss, params)
        out[name] = torch.cat([g.reshape(-1) for g in grads]).numpy()
    return out


def variance_study(module, *, batches: int, episodes_per_batch: int, gamma: float) -> dict:
    import gymnasium as gym

    env = gym.make(ENV)
    rng = np.random.default_rng(123)
    # The constant baseline: the mean reward-to-go over separate calibration episodes, which is
    # where the moving average settles for a fixed policy.
    calib = sample_episodes(module, env, 4 * episodes_per_batch, rng)
    b_const = float(
        np.mean(np.concatenate([mc.reward_to_go(e["rewards"], gamma=gamma) for e in calib]))
    )
    samples: dict[str, list[np.ndarray]] = {}
    lengths = []
    for _ in range(batches):
        batch = sample_episodes(module, env, episodes_per_batch, rng)
        lengths += [len(e["rewards"]) for e in batch]
        for name, g in gradient_estimates(module, batch, gamma, b_const).items():
            samples.setdefault(name, []).append(g)
    env.close()
    stats = {}
    reference = 0.0  # the first nonzero total variance (0.0 when every one is 0)
    for name, gs in samples.items():
        g = np.stack(gs)  # (batches, num_policy_params)
        mean = g.mean(0)
        total_var = float(((g - mean) ** 2).sum(1).mean())  # E||g - E g||^2
        stats[name] = {
            "total_variance": total_var,
            "mean_gradient_norm": float(np.linalg.norm(mean)),
        }
        reference = reference or total_var
    for name in stats:
        stats[name]["variance_relative_to_r_tau"] = stats[name]["total_variance"] / reference
    return {
        "batches": batches,
        "episodes_per_batch": episodes_per_batch,
        "policy_episode_return_mean": float(np.mean(lengths)),
        "moving_average_b": b_const,
        "estimators": stats,
    }


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    colors = {
        "none": "tab:red",
        "moving_average": "tab:orange",
        "batch_mean": "tab:green",
        "value": "tab:blue",
    }
    for run in runs:
        steps, rets, _ = zip(*run["curve"], strict=True)
        label = run["baseline"] if run["seed"] == 0 else None
        ax.plot(steps, rets, color=colors[run["baseline"]], alpha=0.8, label=label)
    ax.axhline(CARTPOLE_SOLVED_RETURN, color="gray", ls="--", lw=1)
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode_return_mean (last 100 episodes)")
    ax.set_title("REINFORCE on CartPole-v1: baselines (seeds 0-2 each)")
    ax.legend(title="baseline")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-env-steps", type=int, default=300_000)
    parser.add_argument("--variance-batches", type=int, default=40)
    parser.add_argument("--variance-episodes", type=int, default=8)
    parser.add_argument("--checkpoint-return", type=float, default=150.0)
    args = parser.parse_args()

    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    logging.getLogger("ray.rllib").setLevel(logging.ERROR)
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    print("learning runs:", flush=True)
    runs = [train_run(b, s, args.max_env_steps) for b in BASELINES for s in range(args.seeds)]
    summary = {}
    for b in BASELINES:
        mine = [r for r in runs if r["baseline"] == b]
        solved = [r for r in mine if r["solved"]]
        summary[b] = {
            "advantage_normalization": AUTO_NORMALIZATION[b],
            "runs": len(mine),
            "solved": len(solved),
            "env_steps_to_475": [r["env_steps_to_475"] for r in mine],
            "wall_time_s_to_475": [r["wall_time_s_to_475"] for r in mine],
            "median_env_steps_to_475_of_solved": float(
                np.median([r["env_steps_to_475"] for r in solved])
            )
            if solved
            else None,
        }
    print("variance study:", flush=True)
    module = reference_policy(args.checkpoint_return, seed=100)
    gamma = ReinforceConfig().gamma
    variance = variance_study(
        module,
        batches=args.variance_batches,
        episodes_per_batch=args.variance_episodes,
        gamma=gamma,
    )
    for name, s in variance["estimators"].items():
        print(f"  {name:30s} variance x{s['variance_relative_to_r_tau']:.3f}", flush=True)
    report = {
        "machine": {"cpus": 2, "gpu": None, "platform": platform.platform()},
        "env": ENV,
        "max_env_steps_per_run": args.max_env_steps,
        "learning": summary,
        "variance_at_fixed_checkpoint": variance,
        "runs": runs,
        "bench_wall_time_s": round(time.time() - t0, 1),
    }
    (OUT / "reinforce_baselines.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(runs, OUT / "reinforce_baselines.png")
    print(json.dumps({"learning": summary, "variance": variance["estimators"]}, indent=2))
    ray.shutdown()


if __name__ == "__main__":
    main()
