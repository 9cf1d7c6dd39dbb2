"""Deep Q-learning (Mnih et al. 2015) with double Q, dueling heads, n-step returns and
prioritized replay, as a custom RLlib algorithm on the new API stack.

Pieces: ``algorithm.py`` (Config, replay in the Algorithm process, training_step),
``learner.py`` (TD loss, target-network updates), ``module.py`` (Nature CNN / MLP,
epsilon-greedy acting), ``losses.py`` (targets and loss), ``replay.py`` + ``sum_tree.py`` (frame
replay, prioritized sampling); the n-step return is ``common/returns.n_step_returns``.

Differences from the paper:
- Adam instead of RMSProp; Huber loss on the TD error; global-norm gradient clipping.
- Frames: grayscale from the emulator, max over the last two raw frames, area-resized to 84x84
  (``envs/atari.py``); the 4-frame stack is built env-side for acting, and the replay memory
  keeps one uint8 frame per transition and rebuilds both stacks when sampling.
- Epsilon decays linearly over env steps as seen by the rollout actors; several rollout actors
  act with weights synced once per training iteration.
- Gradient steps are batched: with uniform replay, ``updates_per_learner_call`` minibatches go
  to the Learner in one call; with prioritized replay each minibatch is drawn over the whole
  memory and its priorities are refreshed before the next one is drawn. Target updates are
  counted in gradient steps and happen at the exact step they are due. With one Learner the
  call is a tight loop over the minibatches (``DQNTorchLearner.update_from_replay``); with W DDP
  Learners each step takes ``train_batch_size_per_learner`` rows on every Learner (RLlib's
  ``Learner.update``), the same step one Learner takes with W times the rows.
- The replay links each frame to its episode's previous and next frames, so the interleaved
  chunks of an actor's many envs stay sampleable (``replay.py``).
- Fused Adam; the non-finite guard and the global-norm clipping share one norm computation.
"""
