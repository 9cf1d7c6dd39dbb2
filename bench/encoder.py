"""Does a VAE's encoder help A2C on Breakout? From scratch (the Nature CNN) against the encoder
of a VAE trained on recorded Breakout frames, frozen and fine-tuned, 3 seeds each, with the
A2C CPU defaults and one env-step budget: the frames recorded for pretraining count against the
pretrained runs (they get ``budget - pretrain_frames`` env steps of RL), and the wall time of
recording and pretraining is reported beside theirs.

    .venv/bin/python bench/encoder.py             # -> bench/results/encoder.json, encoder.png
    .venv/bin/python bench/encoder.py --budget 100000 --seeds 0

The VAE is an MLP one (256 hidden units, 32 latents, KL weight 0.1): on a 2-core CPU its
encoder costs about what the Nature CNN does per frame stack (4 x 7056 x 256 multiply-adds
against ~9M); the convolutional VAE's encoder at 84x84 costs about ten times that.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchkit import open_report, set_headline  # noqa: E402

ENV = "ALE/Breakout-v5"
COMMAND = ".venv/bin/python bench/encoder.py"
# beta 0.1: with the true ELBO (beta 1) the VAE of these dim, dynamically binarized frames put
# 0.3 nats in its code (posterior collapse: an encoder that says nothing of the frame); at 0.1,
# 12 nats after 3 epochs.
VAE = {"arch": "mlp", "hidden": 256, "latent_dim": 32, "beta": 0.1}
MODES: dict[str, dict[str, Any]] = {
    "scratch": {},
    "frozen": {"encoder_mode": "frozen"},
    "finetune": {"encoder_mode": "finetune", "encoder_lr": 1e-4},
}


def pretrain(tmp: Path, frames: int, epochs: int) -> dict[str, Any]:
    """Record ``frames`` Breakout steps (random policy, two rollout actors), train the VAE on
    them; the VAE's run directory and what each part took."""
    import rlgen

    t0 = time.monotonic()
    rec = rlgen.record(ENV, steps=frames, out=tmp / "recording", num_env_runners=2, seed=0)
    t1 = time.monotonic()
    vae: Any = rlgen.train(
        "vae", dataset=str(tmp / "recording"), overrides=VAE, epochs=epochs, seed=0,
        output=tmp / "vae",
    )  # fmt: skip
    t2 = time.monotonic()
    print(f"pretraining: {rec.frames} frames in {t1 - t0:.0f} s, VAE in {t2 - t1:.0f} s",
          file=sys.stderr)  # fmt: skip
    return {
        "vae_run": str(tmp / "vae"),
        "frames": rec.frames,
        "episodes": rec.episodes,
        "record_wall_time_s": round(t1 - t0, 1),
        "vae_wall_time_s": round(t2 - t1, 1),
        "vae_epochs": epochs,
        "vae_config": VAE,
        "vae_test_nll_nats": vae.test_nll_nats,
        "vae_test_bits_per_dim": vae.test_bits_per_dim,
        "vae_test_kl_nats": vae.metrics.get("test_kl_nats"),
    }


def rl_run(mode: str, seed: int, steps: int, offset: int, vae_run: str | None) -> dict:
    """One A2C run of ``steps`` env steps; its curve's x-axis starts at ``offset`` (the frames
    spent on pretraining)."""
    import rlgen

    overrides: dict[str, Any] = dict(MODES[mode])
    if vae_run is not None:
        overrides["encoder"] = vae_run
    curve: list[list[float]] = []

    def report(rep: Any) -> None:
        m = rep.metrics
        curve.append([offset + int(m["env_steps"]), m["episode_return_mean"], m["wall_time_s"]])

    with tempfile.TemporaryDirectory() as out:
        result: Any = rlgen.train(
            "a2c", env=ENV, overrides=overrides, max_env_steps=steps, seed=seed,
            video_frames=0, output=Path(out) / "run", on_report=report,
        )  # fmt: skip
    run = {
        "mode": mode,
        "seed": seed,
        "rl_env_steps": result.env_steps,
        "counted_env_steps": offset + result.env_steps,
        "final_return_mean": result.episode_return_mean,
        "rl_wall_time_s": result.wall_time_s,
        "env_steps_per_s": result.env_steps_per_s,
        "curve": curve,
    }
    print({k: v for k, v in run.items() if k != "curve"}, file=sys.stderr)
    return run


def plot(runs: list[dict], budget: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"scratch": "tab:gray", "frozen": "tab:blue", "finetune": "tab:orange"}
    fig, ax = plt.subplots(figsize=(8, 5))
    for run in runs:
        steps, rets = [c[0] for c in run["curve"]], [c[1] for c in run["curve"]]
        label = run["mode"] if run["seed"] == runs[0]["seed"] else None
        ax.plot(steps, rets, color=colors[run["mode"]], alpha=0.8, label=label)
    ax.set_xlim(0, budget)
    ax.set_xlabel("env steps (pretrained runs: recorded frames first)")
    ax.set_ylabel("episode return (mean of the last 100 games)")
    ax.set_title("A2C on Breakout: Nature CNN vs a VAE's encoder, frozen and fine-tuned")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=200_000, help="env steps per run")
    parser.add_argument("--pretrain-frames", type=int, default=25_000)
    parser.add_argument("--vae-epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    path = ROOT / "bench" / "results" / "encoder.json"
    report, save = open_report(path)
    report.update(budget=args.budget, seeds=args.seeds, runs=[])
    with tempfile.TemporaryDirectory() as tmp:
        pre = pretrain(Path(tmp), args.pretrain_frames, args.vae_epochs)
        report["pretraining"] = {k: v for k, v in pre.items() if k != "vae_run"}
        save()
        for seed in args.seeds:
            for mode in MODES:
                pretrained = mode != "scratch"
                offset = pre["frames"] if pretrained else 0
                run = rl_run(
                    mode, seed, args.budget - offset, offset,
                    pre["vae_run"] if pretrained else None,
                )  # fmt: skip
                report["runs"].append(run)
                save()
    runs = report["runs"]
    summary = {}
    for mode in MODES:
        mine = [r for r in runs if r["mode"] == mode]
        summary[mode] = {
            "final_return_mean": mean([r["final_return_mean"] for r in mine]),
            "final_return_per_seed": [round(r["final_return_mean"], 2) for r in mine],
            "rl_wall_time_s": mean([r["rl_wall_time_s"] for r in mine]),
            "env_steps_per_s": mean([r["env_steps_per_s"] for r in mine]),
        }
    report["summary"] = summary
    scratch = summary["scratch"]["final_return_mean"]
    set_headline(
        report,
        [
            {
                "what": f"A2C Breakout, {args.budget:,} env steps: final return with a {mode} "
                f"VAE encoder ({args.pretrain_frames:,} of the steps spent on pretraining)",
                "ours": summary[mode]["final_return_mean"],
                "unit": "return",
                "peer": scratch if scratch else None,
                "peer_name": "A2C from scratch, same budget" if scratch else None,
                "command": COMMAND,
            }
            for mode in ("frozen", "finetune")
        ],
    )
    plot(runs, args.budget, path.with_suffix(".png"))
    save()
    print(summary, file=sys.stderr)


if __name__ == "__main__":
    main()
