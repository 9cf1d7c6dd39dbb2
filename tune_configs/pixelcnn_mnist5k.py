"""PixelCNN on mnist5k (or any --dataset): learning rate, width and depth, ASHA on epochs.

Expect: the default config (plain, 32 features, 5 blocks) reaches about 100 nats (exact test
NLL) after 3-4 epochs (``generative/pixelcnn/expected.py``); wider and deeper stacks cost more
time per epoch. ASHA keeps the better half after epochs 1 and 2.
"""

from ray import tune

from generative.pixelcnn.config import PixelCNNConfig
from tune_configs.spaces import gen_space
from tuning.experiment import Experiment

EXPERIMENT = Experiment(
    name="pixelcnn_mnist5k",
    job="pixelcnn",
    target="mnist5k",
    doc=__doc__ or "",
    space=gen_space(
        PixelCNNConfig,
        lr=tune.loguniform(3e-4, 3e-3),
        features=tune.choice([32, 64]),
        layers=tune.choice([5, 7]),
    ),
    scheduler="asha",
    num_samples=4,
    epochs=4,
    grace_fraction=0.25,
)
