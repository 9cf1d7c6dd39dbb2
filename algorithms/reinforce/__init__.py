"""REINFORCE (Monte-Carlo policy gradient) with the lecture's variance reductions.

    grad J ~= sum_t ( sum_{t'>=t} gamma^(t'-t) r_t' - b(s_t) ) grad log pi(a_t|s_t)

Pieces: ``algorithm.py`` (Config + training_step), ``learner.py`` (wiring), ``module.py``
(policy MLP + separate value MLP), ``connectors.py`` (returns per step); the math is shared
with A2C in ``algorithms/common`` (``returns.py``, ``pg_losses.py``).

Baselines (``baseline=``): ``none``; ``moving_average``, one constant b kept by the Algorithm as an
exponential moving average of the returns of earlier batches and sent to every Learner before
each update (so all Learners subtract the same b, and b never depends on the batch it is
subtracted from); ``batch_mean``, the mean return of the batch (over every Learner; it depends
on the batch, so it is slightly biased, as the lecture's "average return" baseline); ``value``,
a learned V(s) regressed on the returns, whose output is detached
in the policy term.

Differences from the lecture's pseudo-code (Sutton & Barto's episodic REINFORCE):
- The gamma^t factor in front of G_t is dropped, as in the CS231n estimator the lecture also
  shows and in common practice; it only down-weights late steps.
- One gradient step per batch of complete episodes (Adam), the loss averaged over all steps of
  the batch, not one SGD step per time step.
- Truncated episodes (time limits) bootstrap G with gamma^(T-t) V(s_T) when the value baseline
  exists (``bootstrap_truncated``); terminated episodes never bootstrap.
- Optional advantage normalization, entropy bonus and gradient clipping. Normalization
  (``advantage_normalization``) by default centres and scales G - V(s) with the value baseline
  (the batch's mean advantage as a second baseline on top of V: standard practice, about twice
  as fast on CartPole) and only scales G - b, by its batch root mean square, with the
  constant baselines, which centring would replace by the batch mean.
- The value regression is the plain mean squared error, weighted by ``vf_coeff``.
- With several vectorized envs per rollout actor, a batch holds the episodes that finish first,
  which slightly favours short episodes; one env per actor (the default) has no such bias.
"""
