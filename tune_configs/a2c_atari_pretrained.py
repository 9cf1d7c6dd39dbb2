"""A2C on Atari Breakout from a VAE's encoder: ASHA over frozen vs fine-tuned, the learning rate,
the encoder's own rate and the entropy bonus.

Needs ``--set encoder=VAE_RUN``: a VAE trained on recorded Breakout frames (``rlgen record``,
then ``rlgen train vae --dataset``; docs/recordings.md). ASHA rather than Population Based
Training: an exploit restores one trial's checkpoint under another's config, and a frozen
encoder's run has no optimizer for the encoder that a fine-tuning one could take over.

Expect: 8 trials of 1M env steps; a few hours on a GPU cluster. On a 2-core laptop try it with
``--max-env-steps`` and ``--num-samples``; bench/encoder.py has the figures of both modes at the
same budget against the Nature CNN.
"""

from ray import tune

from algorithms.a2c.algorithm import A2CConfig
from tune_configs.spaces import rl_space
from tuning.experiment import Experiment

EXPERIMENT = Experiment(
    name="a2c_atari_pretrained",
    job="a2c",
    target="ALE/Breakout-v5",
    doc=__doc__ or "",
    space=rl_space(
        A2CConfig,
        encoder_mode=tune.choice(["frozen", "finetune"]),
        encoder_lr=tune.loguniform(1e-5, 1e-3),
        lr=tune.loguniform(2e-4, 2e-3),
        entropy_coeff=tune.choice([0.005, 0.01, 0.02]),
    ),
    needs=(("encoder", "a VAE run or checkpoint trained on Breakout frames"),),
    scheduler="asha",
    num_samples=8,
    max_env_steps=1_000_000,
)
