"""Connecting to Ray and the GPU policy, the same for every job.

``connect()`` joins the cluster named by ``RAY_ADDRESS`` (or the head started on this node with
``ray start --head``) and otherwise starts an embedded local instance. GPU use is automatic:
a job uses GPUs when the cluster has enough of them, unless the user says otherwise.
"""

from __future__ import annotations

import logging
import os
import socket
import sys

from runkit import secrets
from runkit.errors import UserError, first_line

GPU_CHOICES = ("auto", "yes", "no")


def connect() -> None:
    """Join the running cluster (``RAY_ADDRESS``, or the started head), else start one here;
    say which on stderr (its GCS address, nodes, CPUs and GPUs). Before any job makes its
    actors, secrets in the environment are kept out of the runtime envs Ray logs."""
    import ray

    secrets.keep_out_of_runtime_envs()
    if ray.is_initialized():
        return
    check_address()
    where = os.environ.get("RAY_ADDRESS") or "the Ray head started on this node"
    try:
        # An instance started here lives as long as this run: its dashboard (seconds to start)
        # would be gone before anyone looked. A head started with `ray start --head` or a
        # cluster keeps its own dashboard (the option does not apply when joining).
        ray.init(logging_level=logging.ERROR, log_to_driver=False, include_dashboard=False)
    except ConnectionError as exc:
        raise UserError(
            f"cannot join the Ray cluster at {where} ({first_line(exc)}); check the address and "
            "that this machine has that cluster's token (~/.ray/auth_token or RAY_AUTH_TOKEN_PATH)"
        ) from None
    except ray.exceptions.AuthenticationError as exc:
        raise UserError(
            f"the Ray cluster at {where} requires its token ({first_line(exc).split('. ')[0]}); "
            "copy the head's ~/.ray/auth_token here or set RAY_AUTH_TOKEN_PATH"
        ) from None
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    print(
        f"rlgen: Ray cluster at {ray.get_runtime_context().gcs_address}: {len(nodes)} node(s), "
        f"{cluster_cpus():g} CPUs, {cluster_gpus():g} GPUs",
        file=sys.stderr,
    )


def join_if_addressed() -> None:
    """With ``RAY_ADDRESS`` set, join that cluster now, before a run writes anything: an
    unreachable head or a missing token is bad input like any other."""
    if os.environ.get("RAY_ADDRESS", "").strip():
        connect()


def check_address() -> None:
    """A ``RAY_ADDRESS`` of the form HOST:PORT must answer (Ray itself would retry for
    minutes); ``auto``, ``local`` and URLs are left to Ray."""
    address = os.environ.get("RAY_ADDRESS", "").strip()
    if not address or address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"RAY_ADDRESS={address}: expected HOST:PORT of a Ray head's GCS")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise UserError(
            f"RAY_ADDRESS={address}: no Ray head answers there ({exc.strerror or exc})"
        ) from None


def cluster_gpus() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0))


def cluster_cpus() -> float:
    import ray

    return float(ray.cluster_resources().get("CPU", 0))


def decide_gpu(use_gpu: str, count: int) -> bool:
    """Whether ``count`` workers get one GPU each: ``auto`` when the cluster has that many,
    ``yes`` (refused when it has not), ``no``."""
    if use_gpu not in GPU_CHOICES:
        raise UserError(f"--use-gpu {use_gpu}: must be one of {', '.join(GPU_CHOICES)}")
    if use_gpu == "no":
        return False
    enough = cluster_gpus() >= max(1, count)
    if use_gpu == "yes" and not enough:
        raise UserError(f"--use-gpu yes: the cluster has fewer than {count} GPUs")
    return enough


def warn_if_short_of_cpus(what: str, need: float, *, hint: str = "") -> None:
    """Ray holds an actor back until its CPUs are free: say so when a job asks for more CPUs
    than the cluster has now, instead of leaving it to wait in silence."""
    have = cluster_cpus()
    if need > have:
        print(
            f"rlgen: {what} need {need:g} CPUs and this cluster has {have:g}; the run waits "
            f"until CPUs join{hint}",
            file=sys.stderr,
        )
