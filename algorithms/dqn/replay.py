"""Replay memory that stores every Atari frame once and stacks at sample time.

Each slot holds one observation's newest frame (uint8, e.g. 84x84 = 7,056 bytes) and, when the
agent acted from it, the action, the reward and the flags of that transition. An episode of T
transitions takes T + 1 slots (the last holds the final observation only), so memory per
transition is one frame plus ~20 bytes. Slots carry their episode's id and step, so a stack never
reaches across an episode start: the first frames of an episode are padded with its first frame,
exactly as an env-side frame stack pads at reset. Vector observations (CartPole) use a stack of 1.

n-step returns are assembled at sample time too (Sutton & Barto section 7.1):

    G_t^(n) = sum_{k<n} gamma^k r_{t+k+1} + gamma^n max_a Q(s_{t+n}, a)   (bootstrap if not ended)

stopping early at a terminated transition (no bootstrap) or a truncated one (bootstrap from the
observation where the time limit cut in).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from algorithms.dqn.sum_tree import SumTree


@dataclass
class ReplayBatch:
    obs: np.ndarray  # (B, stack, *frame) or (B, *obs_shape) when stack == 1
    actions: np.ndarray  # (B,)
    returns: np.ndarray  # (B,) n-step discounted reward sum
    next_obs: (
        np.ndarray
    )  # (B, ...) observation to bootstrap from (any value when not bootstrapping)
    bootstrap_discount: np.ndarray  # (B,) gamma^k, or 0 where the episode terminated in the window
    weights: np.ndarray  # (B,) importance-sampling weights (ones when uniform)
    indices: np.ndarray  # (B,) slots, for priority updates


class FrameReplay:
    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        *,
        stack: int = 1,
        n_step: int = 1,
        gamma: float = 0.99,
        obs_dtype: type = np.uint8,
        prioritized: bool = False,
        alpha: float = 0.6,
        eps: float = 1e-6,
        seed: int | None = None,
    ) -> None:
        self.capacity, self.stack, self.n_step, self.gamma = capacity, stack, n_step, gamma
        self.frames = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.has_action = np.zeros(capacity, dtype=bool)
        self.terminated = np.zeros(capacity, dtype=bool)
        self.truncated = np.zeros(capacity, dtype=bool)
        self.episode = np.full(capacity, -1, dtype=np.int64)
        self.step = np.zeros(capacity, dtype=np.int32)
        self.cursor = 0
        self.num_slots = 0
        self.num_added = 0  # transitions ever added
        self._open: dict[object, tuple[int, int, int]] = {}  # key -> (slot, episode uid, step)
        self._next_uid = 0
        self.rng = np.random.default_rng(seed)
        self.tree = SumTree(capacity) if prioritized else None
        self.alpha, self.eps, self.max_priority = alpha, eps, 1.0

    def __len__(self) -> int:
        return int(np.count_nonzero(self.has_action))

    @property
    def nbytes(self) -> int:
        arrays = (
            self.frames,
            self.actions,
            self.rewards,
            self.has_action,
            self.terminated,
            self.truncated,
            self.episode,
            self.step,
        )
        return sum(a.nbytes for a in arrays) + (self.tree.nodes.nbytes if self.tree else 0)

    @property
    def bytes_per_transition(self) -> float:
        """Memory per stored transition once full: the preallocated bytes per slot, times the
        slots a transition needs (T + 1 slots per T-step episode)."""
        return self.nbytes / self.capacity * self.num_slots / max(len(self), 1)

    def _write_frame(self, frame: np.ndarray, uid: int, step: int) -> int:
        slot = self.cursor
        self.frames[slot] = frame
        self.has_action[slot] = self.terminated[slot] = self.truncated[slot] = False
        self.episode[slot], self.step[slot] = uid, step
        if self.tree is not None:
            self.tree.set(np.array([slot]), 0.0)
        self.cursor = (self.cursor + 1) % self.capacity
        self.num_slots = min(self.num_slots + 1, self.capacity)
        return slot

    def add_chunk(
        self,
        key: object,
        observations: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        *,
        terminated: bool,
        truncated: bool,
    ) -> None:
        """Add a piece of an episode: L+1 observations and the L transitions between them.

        A later chunk with the same ``key`` continues the episode: its first observation is the
        previous chunk's last one and is not stored again. Only the newest frame of each
        observation is kept (``observations[:, -1]`` when ``stack > 1``).
        """
        frames = observations[:, -1] if self.stack > 1 else observations
        if key in self._open and self.episode[self._open[key][0]] == self._open[key][1]:
            slot, uid, step = self._open.pop(key)
        else:
            self._open.pop(key, None)
            uid, step = self._next_uid, 0
            self._next_uid += 1
            slot = self._write_frame(frames[0], uid, step)
        for t in range(len(actions)):
            self.actions[slot], self.rewards[slot] = actions[t], rewards[t]
            self.has_action[slot] = True
            last = t == len(actions) - 1
            self.terminated[slot] = terminated and last
            self.truncated[slot] = truncated and last and not terminated
            if self.tree is not None:
                self.tree.set(np.array([slot]), self.max_priority**self.alpha)
            self.num_added += 1
            step += 1
            slot = self._write_frame(frames[t + 1], uid, step)
        if not (terminated or truncated):
            self._open[key] = (slot, uid, step)

    def _stack(self, idx: np.ndarray) -> np.ndarray:
        """Frames idx-stack+1 .. idx of each index's episode; earlier ones padded with its
        first frame (never another episode's)."""
        if self.stack == 1:
            return self.frames[idx]
        offsets = np.arange(self.stack - 1, -1, -1)  # oldest first
        back = np.minimum(offsets[None, :], self.step[idx][:, None])  # (B, stack)
        return self.frames[(idx[:, None] - back) % self.capacity]

    def _history_intact(self, idx: np.ndarray) -> np.ndarray:
        """The transition exists and the frames of its stack were not overwritten since."""
        ok = self.has_action[idx].copy()
        uid, step = self.episode[idx], self.step[idx]
        for k in range(1, self.stack):
            j = (idx - k) % self.capacity
            ok &= (step < k) | ((self.episode[j] == uid) & (self.step[j] == step - k))
        return ok

    def _window_written(self, idx: np.ndarray) -> np.ndarray:
        """The n-step window and the observation to bootstrap from are already in memory
        (the newest transitions of a running episode wait for the next chunk)."""
        uid, step = self.episode[idx], self.step[idx]
        ok = np.ones(len(idx), dtype=bool)
        ended = np.zeros(len(idx), dtype=bool)
        for k in range(self.n_step + 1):
            j = (idx + k) % self.capacity
            same = (self.episode[j] == uid) & (self.step[j] == step + k)
            if k < self.n_step:
                ok &= ended | (same & self.has_action[j])
                ended |= same & (self.terminated[j] | self.truncated[j])
            else:
                ok &= ended | same
        return ok

    def _n_step(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        returns = np.zeros(len(idx), dtype=np.float64)
        discount = np.ones(len(idx), dtype=np.float64)
        next_idx = idx.copy()
        running = np.ones(len(idx), dtype=bool)
        for k in range(self.n_step):
            j = (idx + k) % self.capacity
            returns += np.where(running, discount * self.rewards[j], 0.0)
            discount = np.where(running, discount * self.gamma, discount)
            next_idx = np.where(running, (j + 1) % self.capacity, next_idx)
            term = running & self.terminated[j]
            discount = np.where(term, 0.0, discount)
            running &= ~(self.terminated[j] | self.truncated[j])
        return returns.astype(np.float32), discount.astype(np.float32), next_idx

    def sample(self, batch_size: int, *, beta: float = 0.4) -> ReplayBatch:
        if len(self) == 0:
            raise ValueError("cannot sample from an empty replay memory")
        idx = np.empty(0, dtype=np.int64)
        for _ in range(100):
            if self.tree is None:
                draw = self.rng.integers(0, self.num_slots, size=2 * batch_size)
            else:
                # Stratified: one draw from each of batch_size equal slices of the total mass.
                bounds = np.linspace(0.0, self.tree.total, batch_size + 1)
                draw = self.tree.find(self.rng.uniform(bounds[:-1], bounds[1:]))
            intact = self._history_intact(draw)
            if self.tree is not None and not intact.all():
                self.tree.set(draw[~intact], 0.0)  # overwritten history: never valid again
            good = draw[intact & self._window_written(draw)]
            idx = np.concatenate([idx, good])[:batch_size]
            if len(idx) == batch_size:
                break
        else:
            raise RuntimeError("replay memory holds no complete transition to sample")
        if self.tree is None:
            weights = np.ones(batch_size, dtype=np.float32)
        else:
            # w_i = (N P(i))^-beta / max_j w_j, the max over the whole memory (Schaul et al.).
            leaves = self.tree.nodes[self.tree.size : self.tree.size + self.capacity]
            p_min = leaves[leaves > 0].min() / self.tree.total
            probs = self.tree.get(idx) / self.tree.total
            weights = ((probs / p_min) ** (-beta)).astype(np.float32)
        returns, discount, next_idx = self._n_step(idx)
        return ReplayBatch(
            obs=self._stack(idx),
            actions=self.actions[idx],
            returns=returns,
            next_obs=self._stack(next_idx),
            bootstrap_discount=discount,
            weights=weights,
            indices=idx,
        )

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """p_i = |delta_i| + eps; stored as p_i^alpha."""
        if self.tree is None:
            return
        priorities = np.abs(np.asarray(td_errors, dtype=np.float64)) + self.eps
        self.max_priority = max(self.max_priority, float(priorities.max()))
        still = self.has_action[indices]
        self.tree.set(indices[still], priorities[still] ** self.alpha)

    def get_state(self) -> dict:
        """Everything needed to continue sampling after a restore (for checkpoints)."""
        state = {
            k: v for k, v in vars(self).items() if isinstance(v, (np.ndarray, int, float, dict))
        }
        state["rng"] = self.rng.bit_generator.state
        if self.tree is not None:
            state["tree_nodes"] = self.tree.nodes
        return state

    def set_state(self, state: dict) -> None:
        for key, value in state.items():
            if key == "rng":
                self.rng.bit_generator.state = value
            elif key == "tree_nodes":
                assert self.tree is not None
                self.tree.nodes[:] = value
            else:
                setattr(self, key, value)
