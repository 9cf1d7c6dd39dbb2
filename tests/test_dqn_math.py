"""Tier 1: DQN targets, loss and schedules on hand-computed cases."""

import pytest
import torch

from algorithms.common.schedules import linear_schedule
from algorithms.dqn import losses


def test_td_target_terminal_and_bootstrap():
    # y = R + discount * max_a Q_target(s', a): [1 + 0.9*3, 2 + 0*5]
    y = losses.td_target(
        returns_B=torch.tensor([1.0, 2.0]),
        discount_B=torch.tensor([0.9, 0.0]),  # second transition terminated
        next_q_target_BA=torch.tensor([[3.0, -1.0], [5.0, 4.0]]),
    )
    torch.testing.assert_close(y, torch.tensor([3.7, 2.0]))


def test_double_q_target_uses_online_argmax_and_target_value():
    # online argmax = [1, 0]; target values there = [10, 7] -> y = [1 + 0.5*10, 0 + 0.25*7]
    y = losses.double_q_target(
        returns_B=torch.tensor([1.0, 0.0]),
        discount_B=torch.tensor([0.5, 0.25]),
        next_q_online_BA=torch.tensor([[0.0, 1.0], [2.0, 1.0]]),
        next_q_target_BA=torch.tensor([[20.0, 10.0], [7.0, 30.0]]),
    )
    torch.testing.assert_close(y, torch.tensor([6.0, 1.75]))
    # The plain target would take the target net's max instead: [1 + 0.5*20, 0.25*30]
    plain = losses.td_target(
        returns_B=torch.tensor([1.0, 0.0]),
        discount_B=torch.tensor([0.5, 0.25]),
        next_q_target_BA=torch.tensor([[20.0, 10.0], [7.0, 30.0]]),
    )
    torch.testing.assert_close(plain, torch.tensor([11.0, 7.5]))


def test_huber_loss_weights_and_gradient():
    q = torch.tensor([0.5, 3.0], requires_grad=True)
    # errors 0.5 (quadratic: 0.5*0.25 = 0.125) and 3 (linear: 3 - 0.5 = 2.5); weights [1, 0.5]
    loss = losses.huber_td_loss(
        q_B=q, target_B=torch.tensor([0.0, 0.0]), weights_B=torch.tensor([1.0, 0.5])
    )
    assert loss.item() == pytest.approx((0.125 + 0.5 * 2.5) / 2)
    loss.backward()
    # d/dq: [0.5 * 1 / 2, 1 * 0.5 / 2] (gradient clipped to +-1 beyond delta)
    torch.testing.assert_close(q.grad, torch.tensor([0.25, 0.25]))


def test_dueling_aggregation_and_q_taken():
    q = losses.dueling_q(value_B1=torch.tensor([[1.0]]), advantages_BA=torch.tensor([[1.0, 3.0]]))
    torch.testing.assert_close(q, torch.tensor([[0.0, 2.0]]))  # 1 + A - 2
    taken = losses.q_taken(
        q_BA=torch.tensor([[1.0, 2.0], [3.0, 4.0]]), actions_B=torch.tensor([1, 0])
    )
    torch.testing.assert_close(taken, torch.tensor([2.0, 3.0]))


def test_linear_epsilon_schedule():
    assert linear_schedule(0, start=1.0, end=0.1, steps=100) == 1.0
    assert linear_schedule(50, start=1.0, end=0.1, steps=100) == pytest.approx(0.55)
    assert linear_schedule(1000, start=1.0, end=0.1, steps=100) == pytest.approx(0.1)
