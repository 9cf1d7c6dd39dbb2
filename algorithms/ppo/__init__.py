"""Proximal policy optimization (PPO; Schulman et al. 2017), on A2C's rollout round.

    L = -mean_t[min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t)] + c_V L_V - c_H H[pi],
    r_t = pi(a_t|s_t) / pi_old(a_t|s_t)

Pieces: ``algorithm.py`` (Config and the round: A2C's, the same lean rollout engine, actors,
Atari preset and data-parallel whole-chunk shards), ``learner.py`` (the old policy's
log-probabilities and values, the epochs of minibatches, the KL early stop), ``losses.py`` (the
loss and the minibatch plan, pure). The actor and critic are A2C's module (shared or separate
torsos, Nature CNN or MLP, Gaussian for Box actions).

What A2C does with a batch once, PPO does ``num_epochs`` times in shuffled minibatches:
- Advantages: GAE(lambda) over each chunk with V(s_T) bootstrapping the chunk's end unless the
  episode terminated there, computed once per batch, before the first step (A2C's equation);
  the value head regresses on A_t + V_old(s_t).
- The old policy: log pi_old(a_t|s_t) and V_old(s_t) come from the Learner's module as it is
  when the batch arrives, in the same forward pass as the values for GAE. The round is
  synchronous, so these are the weights the rollout actors sampled with; the actors' own
  log-probabilities are not carried across.
- Advantage normalization (``advantage_normalization``, default ``centre_and_scale``) is taken
  per minibatch, as PPO implementations do: minus the minibatch's mean, over its standard
  deviation (the population one, divided by N, where SB3 and CleanRL divide by N - 1: a factor
  sqrt((N-1)/N), 0.998 at N = 256).
- Value clipping (``vf_clip_param``, off by default as in the SB3 zoo): the larger of the
  clipped and unclipped squared errors, as the original implementation does.
- Each epoch shuffles the whole batch and cuts it into round(N / minibatch_size) parts; the
  shuffle is seeded by the run's seed and the env-step count, so a resumed run shuffles as the
  uninterrupted one would.
- KL early stop (``kl_target``, off by default): after each epoch, the mean over its
  minibatches of the approximate KL divergence mean_t[(r_t - 1) - log r_t]; above the target,
  the batch's remaining epochs are skipped (checked per epoch as in CleanRL; SB3 checks before
  each minibatch at 1.5 x its target).
- ``lr`` and ``clip_param`` take linear schedules over env steps, ``[[env_step, value], ...]``.
- Several Learners: each holds whole chunks; every Learner derives the same global minibatch
  plan from the chunks' keys, takes its own rows of each minibatch, and every mean and
  statistic is over the whole minibatch (``BatchStats``), so two Learners take one Learner's
  steps.
"""
