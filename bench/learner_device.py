"""Where an RL Learner trains faster: on the machine's GPU or on its CPUs. The same short run
(same seed, same env steps) twice through the CLI, ``--set num_gpus_per_learner=1`` and ``=0``,
for a small MLP (CartPole-v1) and the Nature CNN (Pong), DQN and PPO. The figure is the run's
``wall_time_s`` (training, after start-up); the ratio GPU / CPU above 1 means the GPU is slower.
``num_gpus_per_learner``'s automatic choice (``RlgenConfig.learner_gpu_pays``) follows it.

    .venv/bin/python bench/learner_device.py             # on a machine with a GPU
    .venv/bin/python bench/learner_device.py --from DIR  # from DIR/<case>_<gpu|cpu>/result.json
                                                         # and DIR/machine.json of such a run

Each run writes its run directory under ``--work`` (a temporary folder by default).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from benchkit import machine_info, set_headline  # noqa: E402

OUT = ROOT / "bench" / "results" / "learner_device.json"
COMMAND = ".venv/bin/python bench/learner_device.py"
SEED = 3
DQN_PONG = ["--set", "learning_starts=1000", "--set", "replay_capacity=10000"]
# case -> (algorithm, env, env steps, further CLI arguments)
CASES: dict[str, tuple[str, str, int, list[str]]] = {
    "dqn_cp": ("dqn", "CartPole-v1", 8000, []),
    "ppo_cp": ("ppo", "CartPole-v1", 24000, []),
    "dqn_pong": ("dqn", "ALE/Pong-v5", 6000, ["--num-env-runners", "2", *DQN_PONG]),
    "ppo_pong": ("ppo", "ALE/Pong-v5", 8000, ["--num-env-runners", "4"]),
}
DEVICES = {"gpu": 1, "cpu": 0}


def run_case(case: str, device: str, work: Path) -> dict[str, Any]:
    """One CLI run; its result.json."""
    algorithm, env, steps, extra = CASES[case]
    out = work / f"{case}_{device}"
    cmd = [
        sys.executable, str(ROOT / "rlgen.py"), "train", algorithm, "--env", env,
        "--max-env-steps", str(steps), "--seed", str(SEED),
        "--set", f"num_gpus_per_learner={DEVICES[device]}", *extra, "--output", str(out),
    ]  # fmt: skip
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    return json.loads((out / "result.json").read_text())


def headline(case: str, runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    algorithm, env, steps, _ = CASES[case]
    return {
        "what": f"{algorithm.upper()} {env}, {steps:,} env steps: training seconds with the "
        "Learner on the GPU",
        "ours": runs["gpu"]["wall_time_s"],
        "unit": "s",
        "peer": runs["cpu"]["wall_time_s"],
        "peer_name": "the same run, Learner on the CPUs",
        "command": COMMAND,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", type=Path, help="results of an earlier run")
    parser.add_argument("--work", type=Path, help="where the runs write (default: a temp dir)")
    args = parser.parse_args()
    if args.source is not None:
        machine = json.loads((args.source / "machine.json").read_text())
        results = {
            case: {d: json.loads((args.source / f"{case}_{d}" / "result.json").read_text())
                   for d in DEVICES}
            for case in CASES
        }  # fmt: skip
    else:
        import torch

        if not torch.cuda.is_available():
            print("learner_device.py: needs a machine with a GPU (or --from DIR)", file=sys.stderr)
            return 2
        machine = {**machine_info(), "gpu": torch.cuda.get_device_name(0)}
        with tempfile.TemporaryDirectory() as tmp:
            work = args.work or Path(tmp)
            results = {case: {d: run_case(case, d, work) for d in DEVICES} for case in CASES}
    keep = ("env_steps", "wall_time_s", "env_steps_per_s", "episode_return_mean")
    report: dict[str, Any] = {
        "machine": machine,
        "seed": SEED,
        "cases": {
            case: {d: {k: runs[d][k] for k in keep} for d in DEVICES}
            for case, runs in results.items()
        },
    }
    set_headline(report, [headline(case, runs) for case, runs in results.items()])
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    for case, runs in report["cases"].items():
        gpu, cpu = runs["gpu"]["wall_time_s"], runs["cpu"]["wall_time_s"]
        print(f"{case}: GPU {gpu:.1f} s, CPU {cpu:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
