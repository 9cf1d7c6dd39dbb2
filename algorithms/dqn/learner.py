"""DQN Learner: replay batch -> TD target -> Huber loss -> metrics; target-network updates.

Two ways in, one loss (``_td_loss``):

- ``update_from_replay``: the Algorithm's replay sample of k minibatches, stepped through in one
  tight loop (tensors moved to the device once, metrics reduced once per call, the target net
  synced at the exact gradient step it is due). Used whenever there is a single Learner.
- RLlib's ``Learner.update`` (``compute_loss_for_module``), used with several DDP Learners:
  each gets its share of every minibatch (equal sizes, so DDP's average of the Learners' mean
  losses is the mean over the whole minibatch), and the target net is synced before each
  step's TD target exactly as in the tight loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.torch.torch_learner import TorchLearner

from algorithms.common import metrics as M
from algorithms.common.gradients import NonFiniteGuard
from algorithms.common.networks import one_thread_for_small_nets
from algorithms.common.optim import ConfiguredLearningRate, register_optimizers
from algorithms.dqn import losses
from algorithms.rllib_compat import device_of

if TYPE_CHECKING:
    from algorithms.dqn.module import DQNTorchRLModule

TD_ERROR = "td_error_per_sample"
NEXT_OBS, RETURNS, DISCOUNT, WEIGHTS = "next_obs", "nstep_returns", "bootstrap_discount", "weights"


class DQNTorchLearner(ConfiguredLearningRate, NonFiniteGuard, TorchLearner):
    # The DQNConfig (RLlib types it as AlgorithmConfig, without this algorithm's fields).
    # Any: importing it here would be an import cycle, as its module imports this one.
    config: Any

    def build(self) -> None:
        super().build()
        # One CPU thread for MLPs (CartPole to 475 in 98 s instead of 106 s here, 2 cores).
        obs_space = self.module[DEFAULT_MODULE_ID].observation_space
        assert obs_space is not None
        one_thread_for_small_nets(device_of(self), obs_space)
        self.num_updates = 0  # gradient steps (minibatches) taken
        self._updates_at_last_sync_check = 0

    def configure_optimizers_for_module(self, module_id: str, config: Any = None) -> None:
        """Adam as RLlib sets it up, but fused (one kernel over all parameters): an Adam step
        of the Nature CNN took 0.7 ms instead of 4.7 ms here."""
        register_optimizers(
            self, module_id, config, lambda params: torch.optim.Adam(params, fused=True)
        )

    def _td_loss(self, module: Any, config: Any, batch: dict, q_BA: torch.Tensor):
        """(loss, TD error, [loss, mean Q(s, a), mean |TD error|]) for one minibatch; the target
        side under no_grad."""
        q_B = losses.q_taken(q_BA=q_BA, actions_B=batch[Columns.ACTIONS])
        with torch.no_grad():
            next_target_BA = module.q_values(batch[NEXT_OBS], target=True)
            if config.double_q:
                target_B = losses.double_q_target(
                    returns_B=batch[RETURNS],
                    discount_B=batch[DISCOUNT],
                    next_q_online_BA=module.q_values(batch[NEXT_OBS]),
                    next_q_target_BA=next_target_BA,
                )
            else:
                target_B = losses.td_target(
                    returns_B=batch[RETURNS],
                    discount_B=batch[DISCOUNT],
                    next_q_target_BA=next_target_BA,
                )
        loss = losses.huber_td_loss(
            q_B=q_B, target_B=target_B, weights_B=batch[WEIGHTS], delta=config.huber_delta
        )
        td_B = (q_B - target_B).detach()
        return loss, td_B, torch.stack([loss.detach(), q_B.detach().mean(), td_B.abs().mean()])

    def compute_loss_for_module(self, *, module_id: str, config: Any, batch: dict, fwd_out: dict):
        # The target net as the tight loop has it at this step: synced for every step taken.
        self._sync_target(module_id)
        module = self.module[module_id].unwrapped()
        loss, td_B, step_stats = self._td_loss(module, config, batch, fwd_out["q"])
        self.num_updates += 1  # the step this loss is for
        self.metrics.log_value((module_id, TD_ERROR), td_B, reduce="item_series")
        self._log_step_stats(module_id, step_stats)
        return loss

    def _log_step_stats(self, module_id: str, stats: torch.Tensor) -> None:
        """stats = [TD loss, mean Q, mean |TD error|], already averaged over the steps."""
        loss, q_mean, td_abs = stats.tolist()
        self.metrics.log_dict(
            {M.TD_LOSS: loss, M.Q_MEAN: q_mean, M.TD_ERROR_ABS_MEAN: td_abs},
            key=module_id,
            window=1,
        )

    def update_from_replay(
        self, arrays: dict[str, np.ndarray], *, minibatch_size: int, timesteps: dict
    ) -> tuple[dict, np.ndarray]:
        """One gradient step per consecutive ``minibatch_size`` rows of ``arrays`` (the columns
        of a replay sample). Returns the reduced metrics and each row's TD error."""
        module_id = DEFAULT_MODULE_ID
        config = self.config.get_config_for_module(module_id)
        module = self._q_module(module_id)
        module.train()
        tensors = {k: torch.from_numpy(v).to(device_of(self)) for k, v in arrays.items()}
        num_steps = len(arrays[Columns.ACTIONS]) // minibatch_size
        td_errors, stats = [], []
        for i in range(num_steps):
            rows = slice(i * minibatch_size, (i + 1) * minibatch_size)
            batch = {k: v[rows] for k, v in tensors.items()}
            q_BA = module.q_values(batch[Columns.OBS])
            loss, td_B, step_stats = self._td_loss(module, config, batch, q_BA)
            grads = self.compute_gradients({module_id: loss})
            self.apply_gradients(self.postprocess_gradients(grads))
            self.num_updates += 1
            self._sync_target(module_id)
            td_errors.append(td_B)
            stats.append(step_stats)
        self._log_step_stats(module_id, torch.stack(stats).mean(dim=0))
        super().after_gradient_based_update(timesteps=timesteps)  # lr schedules
        td = torch.cat(td_errors).cpu().numpy().astype(np.float64)
        return self.metrics.reduce(), td

    def after_gradient_based_update(self, *, timesteps: dict) -> None:
        super().after_gradient_based_update(timesteps=timesteps)
        for module_id in self.module.keys():
            self._sync_target(module_id)

    def _sync_target(self, module_id: str) -> None:
        """Target-network updates, counted in gradient steps: a hard copy each
        ``target_update_period`` steps, or Polyak averaging with ``tau`` per step, i.e. weight
        1 - (1 - tau)^k after k steps since the last sync."""
        before, self._updates_at_last_sync_check = (
            self._updates_at_last_sync_check,
            self.num_updates,
        )
        tau, period = self.config.tau, self.config.target_update_period
        if tau < 1.0:
            weight = 1.0 - (1.0 - tau) ** (self.num_updates - before)
        elif self.num_updates // period > before // period:
            weight = 1.0
        else:
            return
        self._q_module(module_id).sync_target(weight)

    def _q_module(self, module_id: str) -> DQNTorchRLModule:
        """The module itself (unwrapped from DDP), typed as the DQN module it is."""
        return cast("DQNTorchRLModule", self.module[module_id].unwrapped())
