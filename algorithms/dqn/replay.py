"""Replay memory that stores every Atari frame once and stacks at sample time.

Each slot holds one observation's newest frame (uint8, e.g. 84x84 = 7,056 bytes) and, when the
agent acted from it, the action, the reward and the flags of that transition. An episode of T
transitions takes T + 1 slots (the last holds the final observation only), so memory per
transition is one frame plus ~40 bytes. Slots carry their episode's id and step, and links to
the slots of the episode's previous and next frames: an actor with many envs sends chunks of
many episodes that interleave in the memory, so an episode's frames are not adjacent. A stack
never reaches across an episode start: the first frames of an episode are padded with its first
frame, exactly as an env-side frame stack pads at reset. Vector observations (CartPole) use a
stack of 1.

n-step returns are assembled at sample time too (Sutton & Barto section 7.1):

    G_t^(n) = sum_{k<n} gamma^k r_{t+k+1} + gamma^n max_a Q(s_{t+n}, a)   (bootstrap if not ended)

stopping early at a terminated transition (no bootstrap) or a truncated one (bootstrap from the
observation where the time limit cut in).

A transition is *sampleable* once every frame it needs is in memory: its stack's history and
its n-step window up to the observation it bootstraps from (the newest transitions of a running
episode wait for the next chunk). ``ready`` marks exactly those slots, kept up to date as chunks
arrive and as the cursor overwrites old frames; with prioritized replay a slot has priority
mass if and only if it is ready, so no draw is ever rejected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from algorithms.common.returns import n_step_returns
from algorithms.dqn.sum_tree import SumTree

# The per-slot arrays of ``FrameReplay`` (its ``nbytes``: theirs and the sum tree's).
_SLOT_ARRAYS = (
    "frames", "actions", "rewards", "has_action", "terminated", "truncated", "episode", "step",
    "prev", "next", "ready",
)  # fmt: skip


@dataclass
class ReplayBatch:
    obs: np.ndarray  # (B, stack, *frame) or (B, *obs_shape) when stack == 1
    actions: np.ndarray  # (B,)
    returns: np.ndarray  # (B,) n-step discounted reward sum
    next_obs: np.ndarray  # (B, ...) observation to bootstrap from (any value if not bootstrapping)
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
        self.frames: np.ndarray = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.has_action = np.zeros(capacity, dtype=bool)
        self.terminated = np.zeros(capacity, dtype=bool)
        self.truncated = np.zeros(capacity, dtype=bool)
        self.episode = np.full(capacity, -1, dtype=np.int64)
        self.step = np.zeros(capacity, dtype=np.int32)
        self.prev = np.full(capacity, -1, dtype=np.int64)  # slot of the episode's previous frame
        self.next = np.full(capacity, -1, dtype=np.int64)  # slot of the episode's next frame
        self.ready = np.zeros(capacity, dtype=bool)  # sampleable (see the module docstring)
        self.cursor = 0
        self.num_slots = 0
        self.num_added = 0  # transitions ever added
        self._open: dict[object, tuple[int, int, int]] = {}  # key -> (slot, episode uid, step)
        self._next_uid = 0
        self.rng = np.random.default_rng(seed)
        self.tree = SumTree(capacity) if prioritized else None
        self.alpha, self.eps, self.max_priority = alpha, eps, 1.0
        self._priority_changes: dict[int, float] = {}  # slot -> p^alpha, applied per chunk

    def __len__(self) -> int:
        """Transitions held (sampleable or waiting for the rest of their window)."""
        return int(np.count_nonzero(self.has_action))

    @property
    def num_sampleable(self) -> int:
        return int(np.count_nonzero(self.ready))

    @property
    def nbytes(self) -> int:
        tree = self.tree.nodes.nbytes + self.tree.mins.nbytes if self.tree else 0
        return sum(getattr(self, name).nbytes for name in _SLOT_ARRAYS) + tree

    @property
    def bytes_per_transition(self) -> float:
        """Memory per stored transition once full: the preallocated bytes per slot, times the
        slots a transition needs (T + 1 slots per T-step episode)."""
        return self.nbytes / self.capacity * self.num_slots / max(len(self), 1)

    # -- links ---------------------------------------------------------------------------

    def _linked(self, a: int, b: int) -> bool:
        """Slot ``b`` holds the frame right after slot ``a``'s in the same episode (neither
        overwritten since the link was made)."""
        return (
            b >= 0
            and self.episode[b] == self.episode[a]
            and self.step[b] == self.step[a] + 1
            and self.episode[a] >= 0
        )

    def _walk(self, slot: int, count: int, *, forward: bool) -> list[int]:
        """Up to ``count`` slots after (or before) ``slot`` in its episode, while linked."""
        out, cur = [], slot
        links = self.next if forward else self.prev
        for _ in range(count):
            nxt = int(links[cur])
            if not (self._linked(cur, nxt) if forward else self._linked(nxt, cur)):
                break
            out.append(nxt)
            cur = nxt
        return out

    def _is_ready(self, slot: int) -> bool:
        """Every frame of the transition's stack and n-step window is in memory."""
        if not self.has_action[slot]:
            return False
        back = min(int(self.step[slot]), self.stack - 1)
        if len(self._walk(slot, back, forward=False)) < back:
            return False
        cur = slot
        for k in range(self.n_step):
            if self.terminated[cur] or self.truncated[cur]:
                return True
            nxt = int(self.next[cur])
            if not self._linked(cur, nxt):
                return False
            if k < self.n_step - 1 and not self.has_action[nxt]:
                return False
            cur = nxt
        return True

    def _set_priority(self, slots: list[int], value: float) -> None:
        for s in slots:
            self._priority_changes[s] = value

    def _flush_priorities(self) -> None:
        if self.tree is not None and self._priority_changes:
            slots = np.fromiter(self._priority_changes, dtype=np.int64)
            self.tree.set(slots, np.fromiter(self._priority_changes.values(), dtype=np.float64))
        self._priority_changes.clear()

    # -- writing -------------------------------------------------------------------------

    def _forget(self, slot: int) -> None:
        """Before ``slot`` is overwritten: the transitions that need its frame (their stack
        history or their n-step window) can never be sampled again."""
        if self.episode[slot] < 0:
            return
        lost = [slot]
        lost += self._walk(slot, self.stack - 1, forward=True)
        lost += self._walk(slot, self.n_step, forward=False)
        lost = [s for s in lost if self.ready[s]]
        self.ready[lost] = False
        self._set_priority(lost, 0.0)

    def _write_frame(self, frame: np.ndarray, uid: int, step: int, prev: int) -> int:
        slot = self.cursor
        self._forget(slot)
        self.frames[slot] = frame
        self.has_action[slot] = self.terminated[slot] = self.truncated[slot] = False
        self.episode[slot], self.step[slot] = uid, step
        self.prev[slot], self.next[slot] = prev, -1
        if prev >= 0:
            self.next[prev] = slot
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
        previous chunk's last one and is not stored again (unless that slot was overwritten
        meanwhile; then it is stored anew, and the transitions whose stacks reached back past
        it are never sampled). Only the newest frame of each observation is kept
        (``observations[:, -1]`` when ``stack > 1``).
        """
        frames = observations[:, -1] if self.stack > 1 else observations
        opened = self._open.pop(key, None)
        if opened is not None:
            slot, uid, step = opened
            if not (self.episode[slot] == uid and self.step[slot] == step):
                slot = self._write_frame(frames[0], uid, step, prev=-1)  # its slot was reused
        else:
            uid, step = self._next_uid, 0
            self._next_uid += 1
            slot = self._write_frame(frames[0], uid, step, prev=-1)
        first = slot
        written = []
        for t in range(len(actions)):
            self.actions[slot], self.rewards[slot] = actions[t], rewards[t]
            self.has_action[slot] = True
            last = t == len(actions) - 1
            self.terminated[slot] = terminated and last
            self.truncated[slot] = truncated and last and not terminated
            self.num_added += 1
            written.append(slot)
            step += 1
            slot = self._write_frame(frames[t + 1], uid, step, prev=slot)
        if not (terminated or truncated):
            self._open[key] = (slot, uid, step)
        # Newly sampleable: this chunk's transitions, and the earlier ones of the episode whose
        # window waited for this chunk's frames.
        waiting = self._walk(first, self.n_step - 1, forward=False)
        ready = [s for s in waiting + written if not self.ready[s] and self._is_ready(s)]
        self.ready[ready] = True
        self._set_priority(ready, self.max_priority**self.alpha)
        self._flush_priorities()

    # -- sampling ------------------------------------------------------------------------

    def _stack(self, idx: np.ndarray) -> np.ndarray:
        """Frames of steps t-stack+1 .. t of each slot's episode, oldest first, following the
        links back; the steps before the episode's first are padded with its first frame."""
        if self.stack == 1:
            return self.frames[idx]
        cols = [idx]
        cur = idx
        for _ in range(self.stack - 1):
            back = self.prev[cur]
            cur = np.where((self.step[cur] > 0) & (back >= 0), back, cur)
            cols.append(cur)
        return self.frames[np.stack(cols[::-1], axis=1)]  # (B, stack, *frame)

    def _n_step(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The n-step window of each slot, following the links forward until its episode
        ends, then ``n_step_returns``; the next observation is the one after the window."""
        cols, cur = [idx], idx
        running = ~(self.terminated[idx] | self.truncated[idx])
        for _ in range(self.n_step - 1):
            cur = np.where(running, self.next[cur], cur)
            cols.append(cur)
            running &= ~(self.terminated[cur] | self.truncated[cur])
        slots = np.stack(cols, axis=1)  # (B, n); repeats past the episode's end are ignored
        returns, discount, steps = n_step_returns(
            self.rewards[slots], self.terminated[slots], self.truncated[slots], gamma=self.gamma
        )
        next_idx = self.next[slots[np.arange(len(idx)), steps - 1]]
        return returns, discount, next_idx

    def transitions(self, idx: np.ndarray, weights: np.ndarray | None = None) -> ReplayBatch:
        """The batch of the given (ready) slots."""
        idx = np.asarray(idx, dtype=np.int64)
        returns, discount, next_idx = self._n_step(idx)
        return ReplayBatch(
            obs=self._stack(idx),
            actions=self.actions[idx],
            returns=returns,
            next_obs=self._stack(next_idx),
            bootstrap_discount=discount,
            weights=np.ones(len(idx), dtype=np.float32) if weights is None else weights,
            indices=idx,
        )

    def probabilities(self, idx: np.ndarray) -> np.ndarray:
        """P(i) = p_i^alpha / sum_j p_j^alpha (prioritized), 1 / #sampleable (uniform)."""
        if self.tree is None:
            return np.full(len(idx), 1.0 / self.num_sampleable)
        return self.tree.get(idx) / self.tree.total

    def _uniform_draw(self, batch_size: int) -> np.ndarray:
        """Uniform over the sampleable slots: rejection while they are most of the memory, an
        explicit list otherwise."""
        if self.num_sampleable * 4 >= self.num_slots:
            idx = np.empty(0, dtype=np.int64)
            while len(idx) < batch_size:
                draw = self.rng.integers(0, self.num_slots, size=2 * batch_size)
                idx = np.concatenate([idx, draw[self.ready[draw]]])
            return idx[:batch_size]
        return self.rng.choice(np.flatnonzero(self.ready), size=batch_size)

    def sample(self, batch_size: int, *, beta: float = 0.4) -> ReplayBatch:
        """``batch_size`` transitions drawn over the whole memory: uniformly, or (prioritized)
        one from each of ``batch_size`` equal slices of the total priority mass, with the
        importance-sampling weights w_i = (N P(i))^-beta / max_j w_j, the max over the whole
        memory (Schaul et al. 2016)."""
        if self.num_sampleable == 0:
            raise ValueError("replay memory holds no complete transition to sample")
        if self.tree is None:
            return self.transitions(self._uniform_draw(batch_size))
        bounds = np.linspace(0.0, self.tree.total, batch_size + 1)
        idx = self.tree.find(self.rng.uniform(bounds[:-1], bounds[1:]))
        # max_j w_j belongs to the smallest priority: w_i / max w = (P(i) / P_min)^-beta.
        weights = (self.tree.get(idx) / self.tree.min_positive) ** (-beta)
        return self.transitions(idx, weights.astype(np.float32))

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """p_i = |delta_i| + eps; stored as p_i^alpha (slots no longer sampleable stay 0)."""
        if self.tree is None:
            return
        priorities = np.abs(np.asarray(td_errors, dtype=np.float64)) + self.eps
        self.max_priority = max(self.max_priority, float(priorities.max()))
        still = self.ready[indices]
        self.tree.set(indices[still], priorities[still] ** self.alpha)

    def get_state(self) -> dict:
        """Everything needed to continue sampling after a restore (for checkpoints)."""
        state: dict[str, Any] = {
            k: v
            for k, v in vars(self).items()
            if isinstance(v, (np.ndarray, int, float, dict)) and k != "_priority_changes"
        }
        state["rng"] = self.rng.bit_generator.state
        if self.tree is not None:
            state["tree_nodes"] = self.tree.nodes
            state["tree_mins"] = self.tree.mins
        return state

    def set_state(self, state: dict) -> None:
        for key, value in state.items():
            if key == "rng":
                self.rng.bit_generator.state = value
            elif key in ("tree_nodes", "tree_mins"):
                assert self.tree is not None
                getattr(self.tree, key.removeprefix("tree_"))[:] = value
            else:
                setattr(self, key, value)
