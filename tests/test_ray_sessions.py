"""Tier 1: the cluster tests' start helper (``tests/ray_sessions.start_on_free_ports``) retries
what is not the test's fault (a port taken meanwhile, Ray giving up on its own start while the
suite keeps both cores busy) and fails at once on anything else; launches faked, nothing
started."""

from __future__ import annotations

import subprocess

import pytest

from tests.ray_sessions import STARTUP_TIMEOUT, Session, start_on_free_ports

RAY_GAVE_UP = f"Exception: {STARTUP_TIMEOUT}. This could happen because some of the raylet..."


def _launch(outputs: list[str]):
    """A launch that fails with each of ``outputs`` in turn; records the ports it was given."""
    calls: list[dict[str, int]] = []

    def launch(ports: dict[str, int]) -> subprocess.CompletedProcess:
        calls.append(dict(ports))
        return subprocess.CompletedProcess([], 1, "", outputs[len(calls) - 1])

    return launch, calls


@pytest.mark.parametrize(
    "failure", [RAY_GAVE_UP, "ValueError: Failed to bind to 127.0.0.1:8265 (already occupied)"]
)
def test_a_start_ray_gave_up_on_or_a_taken_port_is_made_again_on_new_ports(failure):
    launch, calls = _launch([failure] * 3)
    with pytest.raises(AssertionError, match="every start failed on a taken port or in time"):
        start_on_free_ports(Session.new(None), ("gcs", "dashboard"), launch)
    assert len(calls) == 3
    assert calls[0] != calls[1] != calls[2]


def test_any_other_failure_is_reported_at_once():
    launch, calls = _launch(["RuntimeError: the object store is too small"] * 3)
    with pytest.raises(AssertionError, match="start failed .*object store is too small"):
        start_on_free_ports(Session.new(None), ("gcs",), launch)
    assert len(calls) == 1
