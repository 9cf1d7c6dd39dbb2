"""A VAE's encoder as the torso of DQN and A2C on Breakout (``--set encoder=...``): frozen
weights stay bit-identical through training, resume and evaluation; fine-tuned ones move at
``encoder_lr``, the rest at ``lr``; every copy of the torso (policy, value, target network,
rollout actors) starts from the VAE's weights; a run rebuilt from its spec never reads the
encoder's path again; and what does not fit is refused in one line before a run directory."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import jobs
import rlgen_cli
from algorithms.common.frame_encoder import ENCODER_PREFIX
from runkit.errors import UserError
from tests.test_record import _one_line_refusal
from tests.vae_checkpoints import small_frame_vae, write_checkpoint

BREAKOUT = "ALE/Breakout-v5"
# Small A2C updates: 2 envs x 5 steps per update, one update per iteration.
SMALL_A2C = ("--set", "rollout_fragment_length=5", "--set", "min_sample_timesteps_per_iteration=0")


def _encoder_entries(state: dict) -> dict[str, tuple[str, np.ndarray]]:
    """Each encoder tensor of a policy's state dict: key -> (its name in the export, array)."""
    return {
        k: (k.partition(ENCODER_PREFIX)[2], v.numpy() if torch.is_tensor(v) else np.asarray(v))
        for k, v in state.items()
        if ENCODER_PREFIX in k
    }


def _assert_is_the_export(state: dict, export: dict, copies: int) -> None:
    entries = _encoder_entries(state)
    assert len(entries) == copies * len(export["weights"]), sorted(entries)
    for key, (name, array) in entries.items():
        assert np.array_equal(array, export["weights"][name]), key


def test_what_does_not_fit_is_refused_in_one_line(tmp_path, rlgen_here):
    vae = small_frame_vae(tmp_path / "vae")
    write_checkpoint(tmp_path / "pixelcnn", model="pixelcnn", shape=(1, 8, 8))
    write_checkpoint(tmp_path / "digits", shape=(1, 28, 28), hidden=32, latent_dim=4)
    out = tmp_path / "run"
    base = ("train", "a2c", "--env", BREAKOUT, "--output", str(out))
    for args, needle in [
        ((*base, "--set", f"encoder={tmp_path / 'pixelcnn'}"), "holds a pixelcnn, not a VAE"),
        ((*base, "--set", f"encoder={tmp_path / 'digits'}"),
         "trained on 1x28x28 images; this env's frames are 1x84x84"),
        ((*base, "--set", f"encoder={tmp_path / 'nothing'}"), "nothing"),
        ((*base, "--set", "encoder=[1, 2]"), "must be a non-empty string"),
        ((*base, "--set", f"encoder={vae}", "--set", "model_torso=mlp"), "model_torso=mlp"),
        ((*base, "--set", f"encoder={vae}", "--set", "encoder_mode=thaw"),
         "is not one of frozen, finetune"),
        ((*base, "--set", f"encoder={vae}", "--set", "encoder_lr=0"), "encoder_lr=0"),
        (("train", "a2c", "--env", "CartPole-v1", "--set", f"encoder={vae}", "--output",
          str(out)), "needs stacked frames"),
        (("train", "reinforce", "--env", BREAKOUT, "--set", f"encoder={vae}", "--output",
          str(out)), "unknown reinforce config key"),
    ]:  # fmt: skip
        _one_line_refusal(rlgen_here(*args), needle)
    assert not out.exists()


def test_a_frozen_encoder_stays_the_vaes_through_training_resume_and_eval(
    tmp_path, ray_local, rlgen_here
):
    vae = small_frame_vae(tmp_path / "vae")
    export = jobs.export("encoder", str(vae))
    out = tmp_path / "run"
    run = (
        "train", "a2c", "--env", BREAKOUT, "--set", f"encoder={vae}", "--num-env-runners", "1",
        "--num-envs-per-env-runner", "2", *SMALL_A2C, "--video-frames", "0",
        "--checkpoint-every", "2", "--output", str(out),
    )  # fmt: skip
    assert rlgen_cli.main([*run, "--max-env-steps", "40"]) == 0
    stored = json.loads((out / "run.json").read_text())["spec"]["encoder"]
    assert "weights" not in stored and stored["layers"] == export["layers"]
    assert stored["origin"]["source"] == str(vae) and stored["origin"]["model"] == "vae"

    first = json.loads((out / "result.json").read_text())["checkpoint"]
    weights = torch.load(f"{first}/policy_weights.pt", weights_only=True)
    _assert_is_the_export(weights, export, copies=1)  # A2C's Atari preset shares its torso
    assert rlgen_cli.main(["train", "a2c", "--resume", str(out), "--max-env-steps", "80"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["env_steps"] >= 80 and result["checkpoint"] != first
    resumed = torch.load(f"{result['checkpoint']}/policy_weights.pt", weights_only=True)
    _assert_is_the_export(resumed, export, copies=1)
    head = "pi_head.weight"
    assert not torch.equal(resumed[head], weights[head])  # the rest of the policy trained

    # A resumed run keeps its encoder; rebuilding it never reads the VAE again.
    other = small_frame_vae(tmp_path / "other")
    _one_line_refusal(
        rlgen_here("train", "a2c", "--resume", str(out), "--set", f"encoder={other}"),
        "cannot change on --resume",
    )
    shutil.rmtree(vae)
    assert rlgen_cli.main(["eval", result["checkpoint"], "--episodes", "1"]) == 0

    # A checkpoint handed over with a crafted encoder in its spec: refused in one line.
    for change, needle in [
        (lambda e: e.update(layers=[["linear", 65536, 65536]]), "more than"),
        (lambda e: e.update(layers=[["exec", "rm -rf /"]]), "not conv, linear, relu or flatten"),
        (lambda e: e["origin"].update(source="/elsewhere"), "cannot change"),
    ]:
        crafted = tmp_path / "crafted"
        shutil.rmtree(crafted, ignore_errors=True)
        shutil.copytree(result["checkpoint"], crafted)
        state = json.loads((crafted / "rlgen_state.json").read_text())
        change(state["spec"]["encoder"])
        (crafted / "rlgen_state.json").write_text(json.dumps(state))
        _one_line_refusal(rlgen_here("eval", str(crafted), "--episodes", "1"), needle)


def _algorithm(tmp_path, algorithm: str, **overrides):
    """A new run's Algorithm on Breakout with the small VAE's encoder, one rollout actor."""
    from algorithms import run_loop
    from algorithms.configure import RLRunSpec, build_config

    vae = small_frame_vae(tmp_path / "vae")
    spec = RLRunSpec(
        algorithm=algorithm, env=BREAKOUT, overrides={"encoder": str(vae), **overrides},
        num_env_runners=1, num_envs_per_env_runner=2, seed=0,
    )  # fmt: skip
    config = build_config(spec, frozen=True, importer=jobs.export)
    return run_loop._start_algo(config, spec, None), jobs.export("encoder", str(vae))


def _learner_weights(algo) -> dict[str, torch.Tensor]:
    from algorithms.checkpoints import MODULE_ID

    state = algo.learner_group.get_weights(module_ids=[MODULE_ID])[MODULE_ID]
    return {k: torch.as_tensor(np.asarray(v)).clone() for k, v in state.items()}


def _rollout_actor_weights(algo) -> dict[str, np.ndarray]:
    [state] = algo.env_runner_group.foreach_env_runner(
        lambda r: {k: v.detach().cpu().numpy() for k, v in r.module.state_dict().items()},
        local_env_runner=False,
    )
    return state


def test_a_finetuned_encoder_moves_at_its_own_rate(tmp_path, ray_local):
    """One A2C update with Adam: Adam's first step moves each weight by its learning rate
    times g / (|g| + eps), so the largest move is the optimizer's rate: encoder_lr for the
    encoder, lr for the rest."""
    lr, encoder_lr = 1e-3, 1e-5
    algo, export = _algorithm(
        tmp_path, "a2c", encoder_mode="finetune", optimizer="adam", lr=lr,
        encoder_lr=encoder_lr, rollout_fragment_length=5, min_sample_timesteps_per_iteration=0,
    )  # fmt: skip
    try:
        _assert_is_the_export(_rollout_actor_weights(algo), export, copies=1)
        before = _learner_weights(algo)
        _assert_is_the_export(before, export, copies=1)
        algo.train()
        after = _learner_weights(algo)
    finally:
        algo.stop()
    moved = {k: float((after[k] - before[k]).abs().max()) for k in before}
    encoder = max(v for k, v in moved.items() if ENCODER_PREFIX in k)
    rest = max(v for k, v in moved.items() if ENCODER_PREFIX not in k)
    assert 0.5 * encoder_lr < encoder <= 1.001 * encoder_lr, moved
    assert 0.5 * lr < rest <= 1.001 * lr, moved


def test_dqn_q_and_target_networks_hold_the_frozen_encoder(tmp_path, ray_local):
    algo, export = _algorithm(
        tmp_path, "dqn", learning_starts=20, train_batch_size_per_learner=8,
        rollout_steps_per_iteration=40, updates_per_learner_call=4, target_update_period=2,
        replay_capacity=1000,
    )  # fmt: skip
    try:
        _assert_is_the_export(_rollout_actor_weights(algo), export, copies=1)  # q_net only
        before = _learner_weights(algo)
        _assert_is_the_export(before, export, copies=2)  # q_net and target_net
        for _ in range(3):
            algo.train()
        after = _learner_weights(algo)
    finally:
        algo.stop()
    _assert_is_the_export(after, export, copies=2)
    heads = [k for k in after if k.startswith("q_net.") and ENCODER_PREFIX not in k]
    assert heads and any(not torch.equal(after[k], before[k]) for k in heads)
    target = [k for k in heads if k.replace("q_net.", "target_net.") in after]
    assert all(torch.equal(after[k], after[k.replace("q_net.", "target_net.")]) for k in target)


def test_an_encoder_is_read_only_when_a_run_starts(tmp_path):
    from algorithms.configure import RLRunSpec, build_config

    vae = small_frame_vae(tmp_path / "vae")
    spec = RLRunSpec(algorithm="dqn", env=BREAKOUT, overrides={"encoder": str(vae)})
    with pytest.raises(UserError, match="read only when a run starts"):
        build_config(spec)  # a spec from a file, without its stored encoder: nothing read
