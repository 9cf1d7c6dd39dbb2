"""VAE on mnist5k (or any --dataset): learning rate, latent size and width, ASHA on epochs.

Expect: the default config reaches about 135 nats (importance-weighted test NLL, K = 50) after
15 epochs (``generative/vae/expected.py``), against 208 for a per-pixel Bernoulli model; the
search looks for a lower NLL at the same budget. ASHA keeps the better half at epochs 3, 6
and 12.
"""

from ray import tune

from generative.vae.config import VAEConfig
from tune_configs.spaces import gen_space
from tuning.experiment import Experiment

EXPERIMENT = Experiment(
    name="vae_mnist5k",
    job="vae",
    target="mnist5k",
    doc=__doc__ or "",
    space=gen_space(
        VAEConfig,
        lr=tune.loguniform(1e-4, 3e-3),
        latent_dim=tune.choice([16, 32, 64]),
        hidden=tune.choice([256, 512]),
    ),
    scheduler="asha",
    num_samples=8,
    epochs=15,
)
