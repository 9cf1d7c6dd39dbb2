"""Variational autoencoder (Kingma & Welling 2014) as a Ray Train job.

    log p(x) >= ELBO = E_q(z|x)[log p(x|z)] - KL(q(z|x) || N(0, I))

Pieces: ``config.py`` (settings), ``model.py`` (encoder / decoder, MLP or convolutional,
Bernoulli or 256-way outputs), ``losses.py`` (closed-form KL, reparameterization, the
importance-weighted bound), ``train.py`` (the Job that ``generative/run_loop.py`` runs).

Reported in the lecture's terms: -ELBO per image in nats and bits/dim, its reconstruction and
KL parts, and the test NLL from the K-sample importance-weighted bound (Burda et al. 2016),
which is at most the -ELBO and tightens as K grows.
"""
