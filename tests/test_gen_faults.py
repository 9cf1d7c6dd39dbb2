"""The fault hook of the Train workers' loop (``generative/faults.py``) at its three points:
nothing without the tests' variable; with it, each armed fault of this rank fires at its epoch
and batch, once (a retry finds it claimed). The real runs with faults are in
``tests/test_faults_kills.py`` and ``tests/test_faults_values.py``."""

from __future__ import annotations

import math

import pytest
import torch

from generative.faults import FAULT_DIR_ENV, FileFaults, NoFaults, fault_hook


def test_a_run_without_the_variable_gets_a_hook_that_does_nothing(monkeypatch):
    monkeypatch.delenv(FAULT_DIR_ENV, raising=False)
    hook = fault_hook(0)
    assert type(hook) is NoFaults
    model = torch.nn.Linear(2, 1)
    before = [p.detach().clone() for p in model.parameters()]
    hook.start_epoch(1)
    hook.before_step(0, model)
    loss = torch.tensor(2.0)
    assert hook.loss(loss) is loss
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_armed_faults_fire_at_their_rank_epoch_and_batch_once(tmp_path, monkeypatch):
    for name in (
        "nanloss-rank1-epoch1-batch0",
        "raise-rank1-epoch1-batch2",
        "nanweights-rank1-epoch2-batch1",
        "raise-rank0-epoch1-batch1",  # another worker's
        "claimed-raise-rank1-epoch1-batch1",  # fired in an earlier attempt
    ):
        (tmp_path / name).write_text("")
    monkeypatch.setenv(FAULT_DIR_ENV, str(tmp_path))
    hook = fault_hook(1)
    assert isinstance(hook, FileFaults)
    model, loss = torch.nn.Linear(2, 1), torch.tensor(2.0)

    hook.start_epoch(1)
    hook.before_step(0, model)
    assert math.isnan(float(hook.loss(loss)))  # this step's loss only
    hook.before_step(1, model)
    assert float(hook.loss(loss)) == 2.0
    with pytest.raises(RuntimeError, match="^raise-rank1-epoch1-batch2: injected worker failure$"):
        hook.before_step(2, model)
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())

    retry = fault_hook(1)  # the restarted worker: epoch 1's faults are claimed
    retry.start_epoch(1)
    for batch in range(3):
        retry.before_step(batch, model)
        assert float(retry.loss(loss)) == 2.0
    retry.start_epoch(2)
    retry.before_step(0, model)
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    retry.before_step(1, model)
    assert all(bool(torch.isnan(p).all()) for p in model.parameters())

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "claimed-nanloss-rank1-epoch1-batch0",
        "claimed-nanweights-rank1-epoch2-batch1",
        "claimed-raise-rank1-epoch1-batch1",
        "claimed-raise-rank1-epoch1-batch2",
        "raise-rank0-epoch1-batch1",
    ]
