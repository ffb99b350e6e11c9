"""Ray for the real backend (simcode.sim.real): the session of a run or a study (a local Ray, or a
cluster's address checked first), and the learner actors its runs share."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import socket
import warnings
from collections.abc import Iterator

import numpy as np

from simcode.errors import BadInput, SimulationError


def put_arguments(ray, trainer, batch) -> tuple:
    """What a real iteration's driver puts in the object store for its learners, and how: every agent's
    state packed (Trainer.states), then the minibatch as numpy arrays: -> (states ref, minibatch ref)."""
    return ray.put(trainer.states()), ray.put(batch_arrays(batch))


def batch_arrays(batch) -> dict:
    """A minibatch as Ray moves it cheaply: numpy arrays are put once and read in place by every actor
    (zero-copy), where torch tensors are pickled and copied by each (measured: 1.2-11 ms per actor at
    M = 3-10, batch 256, against 0.6-0.7 ms)."""
    return {f.name: getattr(batch, f.name).numpy() if hasattr(getattr(batch, f.name), "numpy")
            else getattr(batch, f.name) for f in dataclasses.fields(batch)}


def batch_from_arrays(arrays: dict):
    """The Batch of `batch_arrays`, its tensors reading the object store's read-only memory in place
    (the update never writes into its minibatch)."""
    import torch

    from simcode.marl.maddpg import Batch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch warns once that the arrays are read-only
        return Batch(**{name: torch.from_numpy(value) if isinstance(value, np.ndarray) else value
                        for name, value in arrays.items()})


@contextlib.contextmanager
def ray_session(n_learners: int, num_cpus: float, address: str | None) -> Iterator[object]:
    """Ray for one run: joins `address`, or starts a local Ray with the CPUs the learners need (plus
    the controller's) and shuts it down after; one already started in this process is used as is."""
    try:
        import ray
    except ImportError:
        raise BadInput("--backend", "ray is not installed; allowed: sim, or pip install 'simcode[ray]'") from None
    if ray.is_initialized():
        yield ray
        return
    kwargs = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                  configure_logging=True)
    try:
        if address:
            check_reachable(address)
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=max(1, math.ceil(n_learners * num_cpus)) + 1, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        ray.shutdown()
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        if not address:
            raise SimulationError(f"could not start a local Ray ({reason})") from None
        raise BadInput("--address", f"cannot reach a Ray cluster at {address!r} ({reason}); allowed: the address "
                       "of a running cluster (ray start --head prints it), or none for a local Ray") from None
    try:
        yield ray
    finally:
        _POOL.clear()
        ray.shutdown()


# Learner actors of the current Ray session, by CPUs reserved: starting an actor (a process importing
# torch) takes seconds, so the runs of one session (a study, a test module) reuse them.
_POOL: dict[tuple, list] = {}


def learner_pool(ray, n_learners: int, num_cpus: float, actor_class: type) -> list:
    """`n_learners` idle learner actors (of `actor_class`) of this Ray session, started when there are not enough."""
    key = (ray.get_runtime_context().gcs_address, num_cpus)
    for stale in [k for k in _POOL if k[0] != key[0]]:
        del _POOL[stale]  # actors of an earlier session are gone with it
    pool = _POOL.setdefault(key, [])
    actor = ray.remote(num_cpus=num_cpus, max_concurrency=2, max_restarts=0)(actor_class)
    pool.extend(actor.remote() for _ in range(n_learners - len(pool)))
    return pool[:n_learners]


def forget_learners(ray) -> None:
    """Drop the pooled actors after a failure: a dead or busy actor is not reused."""
    for learners in _POOL.values():
        for learner in learners:
            ray.kill(learner)
    _POOL.clear()


def check_reachable(address: str, seconds: float = 3.0) -> None:
    """A Ray address whose port does not answer is bad input now: ray.init would retry for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if address == "auto":
        return  # Ray finds the cluster this machine runs
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except (OSError, ValueError) as exc:
        raise ConnectionError(f"nothing answers at {address} ({type(exc).__name__}: {exc})") from None


def settle(quiet: float = 0.9, window: float = 0.2, longest: float = 3.0) -> float:
    """Wait until this machine's cores are at least `quiet` idle over a `window` (Ray's start-up is over:
    a fresh session prestarts worker processes, and a new actor imports torch, for seconds of CPU that
    the first real iterations would otherwise measure), at most `longest` seconds: -> seconds waited.
    Busy is every CPU time but idle and iowait over the window's wall time (the idle counter itself runs
    slow on some virtual machines)."""
    import os
    import time

    import psutil

    def busy() -> float:
        times = psutil.cpu_times()
        return sum(times) - times.idle - getattr(times, "iowait", 0.0) - getattr(times, "guest", 0.0) \
            - getattr(times, "guest_nice", 0.0)

    started, cores = time.perf_counter(), os.cpu_count() or 1
    while time.perf_counter() - started < longest:
        before, at = busy(), time.perf_counter()
        time.sleep(window)
        if busy() - before <= (1 - quiet) * cores * (time.perf_counter() - at):
            break
    return time.perf_counter() - started
