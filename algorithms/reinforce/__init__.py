"""REINFORCE (Monte-Carlo policy gradient) with the lecture's variance reductions.

    grad J ~= sum_t ( sum_{t'>=t} gamma^(t'-t) r_t' - b(s_t) ) grad log pi(a_t|s_t)

Pieces: ``algorithm.py`` (Config + training_step), ``learner.py`` (wiring), ``module.py``
(policy MLP + separate value MLP), ``connectors.py`` (returns per step); the math is shared
with A2C in ``algorithms/common`` (``returns.py``, ``pg_losses.py``).

Baselines (``baseline=``): ``none``; ``moving_average``, one constant b kept by the driver as an
exponential moving average of the returns of earlier batches and sent to every Learner before
each update (so all Learners subtract the same b, and b never depends on the batch it is
subtracted from); ``value``, a learned V(s) regressed on the returns, whose output is detached
in the policy term.

Differences from the lecture's pseudo-code (Sutton & Barto's episodic REINFORCE):
- The gamma^t factor in front of G_t is dropped, as in the CS231n estimator the lecture also
  shows and in common practice; it only down-weights late steps.
- One gradient step per batch of complete episodes (Adam), the loss averaged over all steps of
  the batch, not one SGD step per time step.
- Truncated episodes (time limits) bootstrap G with gamma^(T-t) V(s_T) when the value baseline
  exists (``bootstrap_truncated``); terminated episodes never bootstrap.
- Optional advantage normalization, entropy bonus and gradient clipping. Normalization subtracts
  the batch mean, which is itself a (batch-constant) baseline: compare baselines with
  ``normalize_advantages=False`` when the estimator alone is the question.
- With several vectorized envs per rollout actor, a batch holds the episodes that finish first,
  which slightly favours short episodes; one env per actor (the default) has no such bias.
"""
