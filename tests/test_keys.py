"""The light key tables (runkit/key_tables.json): generated from the config classes, printed by
``rlgen keys`` and docs/keys.md, and used to refuse bad ``--set`` values before RLlib, torch or
Ray is imported, in the same words as the full checks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import jobs
import rlgen
from generative import MODELS
from runkit import keytable
from runkit.checks import Rule, integer, items, number
from runkit.errors import UserError
from tests.conftest import ROOT


def test_committed_tables_match_the_config_classes():
    assert keytable.tables() == json.loads(json.dumps(rlgen.key_tables())), (
        "runkit/key_tables.json is stale: run `rlgen keys --write`"
    )


def test_docs_keys_md_matches_the_tables():
    assert (ROOT / "docs" / "keys.md").read_text() == keytable.markdown(), (
        "docs/keys.md is stale: run `rlgen keys --write`"
    )


def test_every_job_has_a_table_and_every_key_a_meaning():
    assert set(keytable.tables()) == set(jobs.names())
    for job, table in keytable.tables().items():
        missing = [k for k, row in table["keys"].items() if not row["doc"]]
        assert not missing, f"{job}: keys without a meaning: {missing}"


def test_rlgen_keys_prints_the_table(rlgen_here):
    done = rlgen_here("keys", "dqn")
    assert done.returncode == 0
    assert done.stdout == keytable.text("dqn") + "\n"
    assert (
        "  replay_capacity = 50000 (Atari 100000)\n      integer, >= 100 and <= 100,000,000\n"
        in (done.stdout)
    )
    assert "  lr = 0.0005 (Atari 0.0001)\n" in done.stdout


# (job, overrides): each refused by the full check; the precheck must refuse it in the same words.
BAD = [
    ("reinforce", {"lr": -1}),
    ("reinforce", {"lr": "abc"}),
    ("reinforce", {"gamma": float("nan")}),
    ("reinforce", {"gama": 0.9}),
    ("reinforce", {"callbacks_class": "os.system"}),
    ("reinforce", {"baseline": "learned"}),
    ("reinforce", {"model_hiddens": [10**6]}),
    ("reinforce", {"reward_to_go": "yes"}),
    ("a2c", {"entropy_coeff": [[10, 0.1], [5, 0.0]]}),
    ("a2c", {"rollout_fragment_length": 0}),
    ("a2c", {"num_env_runners": 10**6}),
    ("a2c", {"lambda_": 1.5}),
    ("dqn", {"epsilon": [1.0, 2.0, 10]}),
    ("dqn", {"per_beta": [0.4]}),
    ("dqn", {"replay_capacity": 10**12}),
    ("dqn", {"train_batch_size_per_learner": 0}),
    ("dqn", {"frame_stack": 10**6}),
    ("vae", {"lr": -1}),
    ("vae", {"latent_dim": 10**6}),
    ("vae", {"arch": "resnet"}),
    ("vae", {"hiden": 3}),
    ("vae", {"beta": True}),
    ("pixelcnn", {"layers": 100}),
    ("pixelcnn", {"lr": float("inf")}),
]


def _full_check(job: str, overrides: dict) -> str:
    if job in MODELS:
        from generative.keys import config_class

        call = lambda: config_class(job).from_overrides(job, overrides)  # noqa: E731
    else:
        from algorithms.configure import RLRunSpec, build_config

        call = lambda: build_config(RLRunSpec(job, "CartPole-v1", overrides))  # noqa: E731
    with pytest.raises(UserError) as full:
        call()
    return str(full.value)


@pytest.mark.parametrize("job,overrides", BAD, ids=[f"{j}-{next(iter(o))}" for j, o in BAD])
def test_precheck_refuses_in_the_words_of_the_full_check(job, overrides):
    with pytest.raises(UserError) as light:
        keytable.precheck(job, overrides)
    assert str(light.value) == _full_check(job, overrides)


def test_precheck_passes_good_values():
    keytable.precheck("dqn", {"lr": 1e-4, "epsilon": [1.0, 0.1, 5000], "grad_clip": None})
    keytable.precheck("a2c", {"lr": [[0, 1e-3], [1000, 1e-4]], "entropy_coeff": [[0, 0.01]]})
    keytable.precheck("vae", {"latent_dim": 8, "beta": 0.5})


def test_a_refused_value_loads_no_rllib_torch_or_ray():
    """In a fresh interpreter, as `rlgen train` runs: the refusal comes before the heavy
    imports (the point of the light tables: bad input answers in a fraction of a second)."""
    code = (
        "import sys, rlgen\n"
        "for job, o in [('dqn', {'lr': -1}), ('vae', {'hidden': 0}), ('a2c', {'foo': 1})]:\n"
        "    try:\n"
        "        rlgen.train(job, env=None if job == 'vae' else 'CartPole-v1', overrides=o)\n"
        "    except rlgen.UserError:\n"
        "        pass\n"
        "    else:\n"
        "        raise SystemExit('not refused')\n"
        "heavy = sorted(m for m in ('ray', 'torch', 'gymnasium') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


RULES = [
    (number(0.0, 1.0, low_open=True), [0.5, 1, 1.0], [0.0, -1, 2, "x", True, float("nan")]),
    (integer(1, 8), [1, 8], [0, 9, 1.5, None]),
    (number(0.0, low_open=True, optional=True), [None, 3.0], [0.0, "a"]),
    (number(0.0, low_open=True, or_list=True), [[1, 2], 0.1], [0, None]),
    (Rule("schedule"), [0.1, [[0, 0.1], [5, 0.0]]], [[[5, 0.1], [0, 0.0]], -1, []]),
    (items("[a, b]", ("a", number(0.0, 1.0)), ("b", integer(0))), [[0.5, 3]], [[2, 3], [0.5]]),
]


@pytest.mark.parametrize("rule,good,bad", RULES)
def test_rules_survive_the_table_and_check(rule, good, bad):
    again = Rule.from_data(json.loads(json.dumps(rule.to_data())))
    assert again == rule
    for value in good:
        again.check("k", value)
    for value in bad:
        with pytest.raises(ValueError, match=r"^k"):
            again.check("k", value)
