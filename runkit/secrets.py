"""Secrets in the environment stay out of Ray's runtime envs, and so out of Ray's logs.

Ray writes every runtime env it sets up, in plain text, to its session directory
(``logs/runtime_env_agent.log``) and keeps it with the actor's record. Tune copies
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN`` and
``AWS_SECURITY_TOKEN`` from the driver's environment into every trial's runtime env, and Ray
Train copies its own list of variables into its controller's and workers' runtime envs; Ray 2.60
has no setting that turns this off. ``keep_out_of_runtime_envs()`` takes every secret-looking
name off both lists before a job starts.

The trials still have the credentials where they had them before: a Ray worker process inherits
the environment of its node's raylet, which for the embedded instance is the driver's own
environment. On a cluster each node needs its own credentials (instance role or profile,
``~/.aws``, application default credentials), as any Ray worker there does.
"""

from __future__ import annotations

from collections.abc import Mapping

# A variable whose name holds one of these words is treated as a secret.
SECRET_WORDS = (
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "CREDENTIAL",
    "ACCESS_KEY",
    "PRIVATE_KEY",
    "API_KEY",
)


def is_secret_name(name: str) -> bool:
    """Whether the environment variable ``name`` looks like it holds a secret."""
    upper = name.upper()
    return any(word in upper for word in SECRET_WORDS)


def without_secrets(env_vars: Mapping[str, str]) -> dict[str, str]:
    """``env_vars`` less every secret-looking name (for a runtime env rlgen builds)."""
    return {k: v for k, v in env_vars.items() if not is_secret_name(k)}


def _propagated_name_sets() -> list[set[str]]:
    """The sets of names Ray copies from the driver's environment into runtime envs: Tune's
    (trial actors) and Ray Train's (controller and workers). Both are read when an actor class
    is made, so a name removed here is never copied."""
    from ray.train.v2._internal import constants as train_constants
    from ray.tune.execution import class_cache

    sets = []
    for module in (class_cache, train_constants):
        names = getattr(module, "ENV_VARS_TO_PROPAGATE", None)
        if not isinstance(names, set):
            raise RuntimeError(
                f"{module.__name__}.ENV_VARS_TO_PROPAGATE is no longer a set of names: this Ray "
                "copies environment variables into runtime envs some other way; update "
                "runkit/secrets.py before running with it"
            )
        sets.append(names)
    return sets


def keep_out_of_runtime_envs() -> None:
    """Take every secret-looking name off the lists Ray copies into runtime envs (this process
    only; call before Tune or Ray Train makes its actors)."""
    for names in _propagated_name_sets():
        names.difference_update([n for n in names if is_secret_name(n)])
