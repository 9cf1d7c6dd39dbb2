"""Synchronous advantage actor-critic (A2C; the synchronous form of Mnih et al. 2016's A3C).

    grad J ~= sum_t A(s_t, a_t) grad log pi(a_t|s_t),   A = Q - V estimated from rollouts

Pieces: ``algorithm.py`` (Config, the synchronous sample / update / broadcast round),
``learner.py`` (loss wiring, RMSprop or Adam, entropy schedule), ``module.py`` (actor and
critic, shared or separate torsos, Nature CNN or MLP), ``connectors.py`` (advantages per step).
The math is shared with REINFORCE in ``algorithms/common`` (``returns.py``, ``pg_losses.py``).

Advantages: GAE(lambda) over each T-step chunk, V(s_T) bootstrapping the chunk's end unless the
episode terminated there (time-limit truncation and the rollout cut both bootstrap);
lambda = 1 is the n-step estimator A_t = sum_{k<T-t} gamma^k r_{t+k} + gamma^(T-t) V(s_T) -
V(s_t) of the lecture's actor-critic. The value head regresses on A_t + V(s_t).

Loss: L = -mean[log pi(a|s) A] + vf_coeff * mean[(V(s) - target)^2] - entropy_coeff * H[pi],
with A detached (it is computed outside autograd, from a separate forward pass). The value term
is the plain mean squared error, as in the A2C baselines, so their vf_coeff = 0.5 weighs it as
there: 0.5 * MSE (with a 1/2 inside the loss it was 0.25 * MSE, half their weight).

Differences from the lecture's pseudo-code and the paper:
- Synchronous: every actor waits for the same weights (no stale, asynchronous gradients).
- One gradient step per round on the batch of all actors, averaged over its steps.
- Optional advantage normalization (``advantage_normalization``), off by default as in the
  A2C baselines: ``scale`` divides A by its batch root mean square, ``centre_and_scale`` also
  subtracts its batch mean (a batch-mean baseline on top of V(s)).
- A round where lost rollout actors left fewer chunks than Learners samples again with the
  same weights before the update (each Learner trains on whole chunks).
- The CartPole defaults are the A2C baselines' settings (8 envs x 5 steps, RMSprop 7e-4, n-step
  advantages, clip 0.5, no entropy bonus): they solve CartPole on every seed of bench/a2c.py,
  where larger Adam batches with a decaying lr fell back on some seeds.
- Several Learners (DDP) each take whole episode chunks; the batch mean and the advantage std
  are taken over all of them, so two Learners make one Learner's update.
- Atari: life loss ends a training episode (no bootstrap across lives), rewards clipped to
  [-1, 1] in training envs; the reported return is the unclipped full-game return.
"""
