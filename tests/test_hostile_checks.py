"""Hostile values against the shared checks themselves (``runkit.checks``: non-finite numbers,
seeds, widths) and through the Python API (``rlgen.train``, ``evaluate``, ``sample``,
``tune``): refused with a UserError of one line, before anything is written. The command line's
cases are in ``test_hostile_inputs.py``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_bad_inputs import _files

# --- the shared checks themselves -----------------------------------------------------------

CHECK_CASES: list[tuple[str, Any, str]] = [
    ("range nan", lambda c: c.check_range("x", float("nan"), low=0.0), "finite"),
    ("range inf above no bound", lambda c: c.check_range("x", float("inf"), low=0.0), "finite"),
    ("range -inf below no bound", lambda c: c.check_range("x", -float("inf")), "finite"),
    ("schedule value nan", lambda c: c.check_schedule("x", [[0, float("nan")]]), "finite"),
    ("finite nested", lambda c: c.check_finite("x", {"a": [1, [2, float("inf")]]}), "finite"),
    ("finite dict key", lambda c: c.check_finite("x", {float("nan"): 1}), "finite"),
    ("finite too many", lambda c: c.check_finite("x", [[0] * 1000] * 1000), "more than"),
    ("seed 2**32", lambda c: c.check_seed("s", 2**32), "out of range"),
    ("seed -1", lambda c: c.check_seed("s", -1), "out of range"),
    ("seed float", lambda c: c.check_seed("s", 1.5), "an integer"),
    ("widths 4097", lambda c: c.check_widths("w", [4097]), "<= 4096"),
    ("widths 9 layers", lambda c: c.check_widths("w", [1] * 9), "1 to 8"),
    ("widths weights", lambda c: c.check_widths("w", [4096, 4096, 2048]), "weights"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "call", "needle"), CHECK_CASES, ids=[c[0] for c in CHECK_CASES])
def test_shared_checks_refuse(case, call, needle):
    from runkit import checks

    with pytest.raises(ValueError, match=None) as caught:
        call(checks)
    assert needle in str(caught.value), (case, str(caught.value))


def test_shared_checks_accept_what_is_sound():
    from runkit import checks

    checks.check_range("x", 1e300, low=0.0)
    checks.check_finite("x", {"a": [1, 2.5, {"b": -3e10}], "c": "nan"})  # text stays text
    checks.check_seed("s", 0)
    checks.check_seed("s", 2**32 - 1)
    checks.check_widths("w", [4096, 4096])  # 16.8M weights: at the bound
    checks.check_widths("w", [64] * 8)


# The same classes through the Python API: a UserError with one line, nothing written.
API_CASES: list[tuple[str, Any, str]] = [
    ("stop reward nan", lambda r, t: r.train("reinforce", env="CartPole-v1",
                                             stop_reward=float("nan")), "finite"),
    ("time budget inf", lambda r, t: r.train("a2c", env="CartPole-v1",
                                             time_budget_s=float("inf")), "finite"),
    ("lr inf", lambda r, t: r.train("dqn", env="CartPole-v1", overrides={"lr": float("inf")}),
     "finite"),
    ("nan in an RLlib key", lambda r, t: r.train(
        "reinforce", env="CartPole-v1", overrides={"min_time_s_per_iteration": float("nan")}),
     "finite"),
    ("seed 2**64", lambda r, t: r.train("vae", seed=2**64), "out of range"),
    ("callbacks class", lambda r, t: r.train(
        "a2c", env="CartPole-v1", overrides={"callbacks_class": "os.system"}), "does not let"),
    ("eval seed -1", lambda r, t: r.evaluate(t / "rl-ckpt", seed=-1), "out of range"),
    ("sample 10**9", lambda r, t: r.sample(t / "vae-ckpt", n=10**9), "from 1 to 1024"),
    ("tune 10**9 trials", lambda r, t: r.tune("reinforce_cartpole", num_samples=10**9),
     "must be from 1 to 10,000"),
    ("tune time budget inf", lambda r, t: r.tune("reinforce_cartpole",
                                                 time_budget_s=float("inf")), "finite"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "call", "needle"), API_CASES, ids=[c[0] for c in API_CASES])
def test_hostile_value_through_the_python_api(tmp_path, monkeypatch, case, call, needle):
    import rlgen
    from tests.test_bad_inputs import _setup

    _setup(tmp_path)
    before = _files(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(rlgen.UserError) as caught:
        call(rlgen, tmp_path)
    message = str(caught.value)
    assert "\n" not in message and needle in message, (case, message)
    assert _files(tmp_path) == before
    assert not (tmp_path / "runs").exists()
