"""``rlgen record`` on Breakout (random policy): the rollout actor's peak memory for a short and
a long recording (flat when frames stream to disk in row groups), its growth per 100k frames,
and the recording rate against the same actors sampling without writing.

    .venv/bin/python bench/record.py                    # -> bench/results/record.json
    .venv/bin/python bench/record.py --steps 20000 100000
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
COMMAND = ".venv/bin/python bench/record.py"


def sampling_rate(steps: int) -> float:
    """Env steps per second of one rollout actor sampling the same policy, writing nothing."""
    import ray

    from algorithms.record import ROUND_STEPS, Policy, _config
    from algorithms.record_runner import RecordingRunner

    spec = {"algorithm": "a2c", "env": ENV, "overrides": {}}
    config = _config(Policy("a2c", spec, None, 1.0, None), 1, 1, seed=0)

    class Sampler(RecordingRunner):
        def run(self, n: int) -> float:
            import numpy as np

            self._epsilon, self._rng = 1.0, np.random.default_rng(0)
            t0, done = time.perf_counter(), 0
            while done < n:
                done += sum(len(e) for e in self.sample(num_timesteps=ROUND_STEPS, explore=False))
            return done / (time.perf_counter() - t0)

    remote: Any = ray.remote(num_cpus=1)(Sampler)
    actor = remote.remote(config=config, worker_index=1, num_workers=1)
    rate = ray.get(actor.run.remote(steps))
    ray.kill(actor)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs=2, default=[20_000, 100_000])
    args = parser.parse_args()
    path = ROOT / "bench" / "results" / "record.json"
    report, save = open_report(path)
    import rlgen

    runs = {}
    rates = [sampling_rate(args.steps[0])]  # before and after the recordings: the drift
    with tempfile.TemporaryDirectory() as tmp:
        for steps in args.steps:
            result = rlgen.record(
                ENV, steps=steps, out=Path(tmp) / f"rec{steps}", num_env_runners=1, seed=0
            )
            runs[steps] = {
                "frames": result.frames,
                "episodes": result.episodes,
                "wall_time_s": result.wall_time_s,
                "steps_per_s": round(result.steps / result.wall_time_s, 1),
                "actor_peak_rss_mb": result.actor_peak_rss_mb[0],
                "bytes_on_disk": sum(
                    p.stat().st_size for p in (Path(tmp) / f"rec{steps}").rglob("*.parquet")
                ),
            }
            print(steps, runs[steps], file=sys.stderr)
    short, long = (runs[s] for s in args.steps)
    growth = (long["actor_peak_rss_mb"] - short["actor_peak_rss_mb"]) / (
        (long["frames"] - short["frames"]) / 100_000
    )
    rates.append(sampling_rate(args.steps[0]))
    rate = sum(rates) / 2
    report["sampling_only_steps_per_s_before_after"] = [round(r, 1) for r in rates]
    report["runs"] = {str(k): v for k, v in runs.items()}
    report["peak_rss_growth_mb_per_100k_frames"] = round(growth, 1)
    report["sampling_only_steps_per_s"] = round(rate, 1)
    set_headline(
        report,
        [
            {
                "what": f"record Breakout, 1 actor: peak memory, {args.steps[1]:,} steps",
                "ours": long["actor_peak_rss_mb"], "unit": "MB",
                "peer": short["actor_peak_rss_mb"],
                "peer_name": f"the same actor recording {args.steps[0]:,} steps",
                "command": COMMAND,
            },
            {
                "what": "record Breakout, 1 actor: env steps/s recording",
                "ours": long["steps_per_s"], "unit": "env steps/s",
                "peer": round(rate, 1),
                "peer_name": "the same actor sampling, writing nothing (before/after mean)",
                "command": COMMAND,
            },
        ],
    )  # fmt: skip
    save()
    print(f"peak memory grows {growth:.1f} MB per 100k frames; wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
