"""Start-up figures, from the shell to exit, in fresh processes as a user runs them:

- a refused bad input (unknown key, wrong type, out of range, non-finite) for an RL algorithm
  and a generative model: goal <= 1.5 s;
- ``rlgen train reinforce --env CartPole-v1 --max-env-steps 1000``: goal <= 10 s;
- ``rlgen train vae --dataset <500 MNIST images> --epochs 1``: goal <= 20 s;

each next to floors measured in the same run: the interpreter's own start (``python -c
pass``) and a bare local Ray start and stop (``ray.init(); ray.shutdown()``). ``--rlgen
PATH/rlgen.py --label before`` times another checkout the same way (its figures go under that
label), so a before/after pair comes from one run on one machine.

    python bench/startup.py                      # -> bench/results/startup.json
    python bench/startup.py --rlgen /tmp/old/rlgen.py --label before --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

REFUSED = {
    "unknown key": ["train", "dqn", "--env", "CartPole-v1", "--set", "gama=0.9"],
    "wrong type": ["train", "reinforce", "--env", "CartPole-v1", "--set", "lr=fast"],
    "out of range": ["train", "a2c", "--env", "CartPole-v1", "--set", "gamma=2"],
    "non-finite": ["train", "reinforce", "--env", "CartPole-v1", "--set", "lr=.nan"],
    "generative out of range": ["train", "vae", "--set", "latent_dim=0"],
    "generative unknown key": ["train", "pixelcnn", "--set", "layer=3"],
}
FLOORS = {
    "python start": ["-c", "pass"],
    "bare Ray start and stop": [
        "-c",
        "import logging, ray; ray.init(logging_level=logging.ERROR, log_to_driver=False, "
        "include_dashboard=False); ray.shutdown()",
    ],
}


def small_dataset(root: Path, train: int = 500, test: int = 100) -> str:
    """The first ``train`` / ``test`` images of the embedded MNIST subset, as a dataset."""
    from generative.data.images import mnist5k, read_split, split_path, write_images

    for split, n in (("train", train), ("test", test)):
        images, labels = read_split(split_path(mnist5k(), split), limit=n)
        write_images(root / f"{split}.parquet", images.transpose(0, 2, 3, 1), labels)
    return str(root)


def timed(argv: list[str], expect: int, cwd: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    t0 = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    wall = time.monotonic() - t0
    if done.returncode != expect:
        raise SystemExit(f"{' '.join(argv)}: exit {done.returncode}, not {expect}:\n{done.stderr}")
    return wall


def figures(walls: list[float]) -> dict[str, float]:
    return {
        "median_s": round(statistics.median(walls), 2),
        "min_s": round(min(walls), 2),
        "max_s": round(max(walls), 2),
    }


def measure(rlgen: Path, repeats: int, dataset: str, tmp: Path) -> dict[str, dict]:
    python = sys.executable
    out: dict[str, dict] = {}
    for name, args in FLOORS.items():
        out[name] = figures([timed([python, *args], 0, tmp) for _ in range(repeats)])
    for name, args in REFUSED.items():
        out[f"refused: {name}"] = figures(
            [timed([python, str(rlgen), *args], 2, tmp) for _ in range(repeats)]
        )
    runs = {
        "reinforce 1000 env steps": [
            "train", "reinforce", "--env", "CartPole-v1", "--max-env-steps", "1000",
        ],
        "vae 500 images 1 epoch": ["train", "vae", "--dataset", dataset, "--epochs", "1"],
    }  # fmt: skip
    for name, args in runs.items():
        walls = []
        for i in range(repeats):
            run_dir = tmp / f"{name.split()[0]}-{rlgen.parent.name}-{i}"
            walls.append(timed([python, str(rlgen), *args, "--output", str(run_dir)], 0, tmp))
        out[name] = figures(walls)
    return out


def headline(report: dict, label: str) -> list[dict]:
    ours = report["labels"][label]
    refused = max(v["median_s"] for k, v in ours.items() if k.startswith("refused: "))
    ray_floor = ours["bare Ray start and stop"]["median_s"]
    command = "python bench/startup.py"
    return [
        {"what": "refused bad input, slowest of 6 kinds, shell to exit (goal <= 1.5 s)",
         "ours": refused, "unit": "s", "peer": ours["python start"]["median_s"],
         "peer_name": "python -c pass", "command": command},
        {"what": "rlgen train reinforce --max-env-steps 1000, shell to exit (goal <= 10 s)",
         "ours": ours["reinforce 1000 env steps"]["median_s"], "unit": "s", "peer": ray_floor,
         "peer_name": "bare ray.init + shutdown", "command": command},
        {"what": "rlgen train vae, 500 images, 1 epoch, shell to exit (goal <= 20 s)",
         "ours": ours["vae 500 images 1 epoch"]["median_s"], "unit": "s", "peer": ray_floor,
         "peer_name": "bare ray.init + shutdown", "command": command},
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rlgen", type=Path, default=ROOT / "rlgen.py")
    parser.add_argument("--label", default="now")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "startup.json")
    args = parser.parse_args()

    import platform

    from benchkit import set_headline

    report = json.loads(args.out.read_text()) if args.out.exists() else {}
    report["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    with tempfile.TemporaryDirectory() as tmp:
        dataset = small_dataset(Path(tmp) / "mnist500")
        figures_now = measure(args.rlgen.resolve(), args.repeats, dataset, Path(tmp))
    report.setdefault("labels", {})[args.label] = figures_now
    report["repeats"] = args.repeats
    for name, value in figures_now.items():
        print(f"{args.label:>8}  {name:<40} {value['median_s']:6.2f} s", flush=True)
    if args.label == "now":
        set_headline(report, headline(report, "now"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
