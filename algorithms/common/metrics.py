"""Metric names, defined once: TensorBoard tags, result.json keys, tests and benchmarks."""

# result.json keys (the outputs contract in the README, RL jobs).
ALGORITHM = "algorithm"
ENV = "env"
ENV_STEPS = "env_steps"
WALL_TIME_S = "wall_time_s"
EPISODE_RETURN_MEAN = "episode_return_mean"
BEST_EPISODE_RETURN_MEAN = "best_episode_return_mean"
SOLVED = "solved"
ENV_STEPS_PER_S = "env_steps_per_s"
CHECKPOINT = "checkpoint"
TENSORBOARD_DIR = "tensorboard_dir"

# Learner-side metrics (logged by each Learner, reduced by RLlib).
POLICY_LOSS = "policy_loss"
VALUE_LOSS = "value_loss"
ENTROPY = "entropy"
GRAD_NORM = "grad_norm"
BASELINE_MEAN = "baseline_mean"
ADVANTAGE_STD = "advantage_std"
NONFINITE_UPDATES = "nonfinite_updates_skipped"
NONFINITE_ABORT = "nonfinite_abort"  # 1 once max_nonfinite_updates were skipped in a row
ENTROPY_COEFF = "entropy_coeff"  # A2C: the scheduled value used in the step
LEARNING_RATE = "learning_rate"  # what the optimizer stepped with (read before the step)

# PPO Learner metrics.
APPROX_KL = "approx_kl"  # the epoch's mean approximate KL(pi_old || pi) over its minibatches
CLIP_FRACTION = "clip_fraction"  # share of the last minibatch's steps outside the clip range
CLIP_PARAM = "clip_param"  # the scheduled clip eps used in the update
EPOCHS_DONE = "epochs_done"  # epochs taken on the last batch (fewer after a KL early stop)

# DQN Learner metrics.
Q_MEAN = "q_mean"
TD_ERROR_ABS_MEAN = "td_error_abs_mean"
TD_LOSS = "td_loss"
LEARNER_KEYS = (
    POLICY_LOSS, VALUE_LOSS, ENTROPY, BASELINE_MEAN, ADVANTAGE_STD,
    Q_MEAN, TD_ERROR_ABS_MEAN, TD_LOSS, ENTROPY_COEFF, LEARNING_RATE,
    APPROX_KL, CLIP_FRACTION, CLIP_PARAM, EPOCHS_DONE,
)  # fmt: skip

# Metrics the Algorithm logs itself (not its Learners).
MOVING_AVERAGE_BASELINE = "moving_average_baseline"
EPSILON = "epsilon"
REPLAY_SIZE = "replay_size"
REPLAY_BYTES_PER_TRANSITION = "replay_bytes_per_transition"
ALGORITHM_KEYS = (EPSILON, REPLAY_SIZE, REPLAY_BYTES_PER_TRANSITION)

# TensorBoard tags, x-axis = env steps.
TB_TAGS = {
    "episode_return_mean": "episode/return_mean",  # last 100 games, unclipped
    # Per-iteration mean of the training episodes' reward sums as RLlib sees them: for Atari
    # training envs that is clipped and per life.
    "training_return_mean": "episode/training_return_mean",
    "episode_return_min": "episode/return_min",  # episodes of this iteration (RLlib)
    "episode_return_max": "episode/return_max",
    "episode_len_mean": "episode/len_mean",
    POLICY_LOSS: "learner/policy_loss",
    VALUE_LOSS: "learner/value_loss",
    ENTROPY: "learner/entropy",
    ENTROPY_COEFF: "learner/entropy_coeff",
    LEARNING_RATE: "learner/learning_rate",
    GRAD_NORM: "learner/grad_norm",
    BASELINE_MEAN: "learner/baseline_mean",
    ADVANTAGE_STD: "learner/advantage_std",
    MOVING_AVERAGE_BASELINE: "learner/moving_average_baseline",
    ENV_STEPS_PER_S: "perf/env_steps_per_s",
    NONFINITE_UPDATES: "learner/nonfinite_updates_skipped",
    APPROX_KL: "learner/approx_kl",
    CLIP_FRACTION: "learner/clip_fraction",
    CLIP_PARAM: "learner/clip_param",
    EPOCHS_DONE: "learner/epochs_done",
    Q_MEAN: "learner/q_mean",
    TD_ERROR_ABS_MEAN: "learner/td_error_abs_mean",
    TD_LOSS: "learner/td_loss",
    EPSILON: "explore/epsilon",
    REPLAY_SIZE: "replay/size",
    REPLAY_BYTES_PER_TRANSITION: "replay/bytes_per_transition",
}
