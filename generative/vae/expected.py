"""Results to expect from the VAE, imported by its learning test and the benchmark.

mnist5k (4,000 train / 1,000 test digits, dynamically binarized), default config, one Train
worker on 2 CPU cores: the importance-weighted test NLL (K = 50) fell from 205 nats after epoch 1
to about 135 after 15 epochs and 117-118 after 30 (49 s in all); a per-pixel independent
Bernoulli model fitted to the same data scores 208. The learning test asks for < 150 nats after
15 epochs. (Full binarized MNIST, 60k images: 86.76 nats in the VAE paper's
setting; mnist5k has 15x fewer training images.)
"""

MNIST5K_EPOCHS = 15
MNIST5K_MAX_TEST_NLL_NATS = 150.0
