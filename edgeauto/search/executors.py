"""Where trials run: in this process, or on Ray (a local cluster or one joined by address).

One interface (:class:`Executor`), registered in :data:`EXECUTORS` (``inprocess``, ``ray``;
each constructed as ``cls(objective, ...)``): ``submit(job)`` at most :attr:`~Executor.slots` at a time,
``wait()`` returns the trials that finished, in the order they finished. A trial that raises,
whose worker dies, or that runs past its timeout comes back as a ``failed``
:class:`TrialOutcome` carrying the error; it never ends the study.

Ray is imported only by :class:`RayExecutor`. ``address=None`` starts a local cluster
(``ray.init``) sized ``workers x cpus_per_trial``; ``"auto"`` joins the cluster started on
this machine by ``ray start --head``; ``HOST:PORT`` joins that head. Reaching the head is
bounded: a TCP probe, a gRPC handshake, then ``ray.init`` in a thread, each given at most
``connect_timeout_s``.
"""

from __future__ import annotations

import abc
import collections
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from edgeauto.errors import ConfigError
from edgeauto.registry import Registry
from edgeauto.search.objective import Metrics, Objective
from edgeauto.spaces.base import Arch
from edgeauto.train import thread_cap


@dataclass(frozen=True)
class TrialJob:
    """One trial to run: its number, arch, training seed and CPU share (torch threads)."""

    number: int
    arch: Arch
    seed: int
    cpus: int = 1


@dataclass(frozen=True)
class TrialOutcome:
    """What came back: ``ok`` with metrics, or ``failed`` with a one-line error."""

    number: int
    status: str
    metrics: Metrics = field(default_factory=dict)
    error: str | None = None
    wall_s: float = 0.0
    worker: str = ""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_trial(objective: Objective, job: TrialJob) -> TrialOutcome:
    """Run ``objective`` on ``job`` with ``job.cpus`` torch threads; exceptions become a
    ``failed`` outcome (the study goes on)."""
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, job.cpus))
    start = time.perf_counter()
    try:
        with thread_cap(job.cpus):  # fit() would otherwise raise it to every core
            metrics = objective(job.arch, job.seed)
        if not isinstance(metrics.get("accuracy"), int | float):
            raise TypeError(f"objective returned no numeric 'accuracy': {metrics!r}")
        status, error = "ok", None
    except Exception as exc:  # a trial's failure is data, not a crash of the study
        metrics, status = {}, "failed"
        error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    finally:
        torch.set_num_threads(old)
    wall = time.perf_counter() - start
    return TrialOutcome(job.number, status, metrics, error, wall, worker_name())


class Executor(abc.ABC):
    """Runs trials; ``slots`` of them at once."""

    slots: int = 1
    cpus_per_trial: int = 1

    @abc.abstractmethod
    def submit(self, job: TrialJob) -> None:
        """Start ``job`` (the caller keeps at most :attr:`slots` running)."""

    @abc.abstractmethod
    def wait(self) -> list[TrialOutcome]:
        """Block until at least one running trial finishes; those that did ([] if none run)."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """Kind, slots and where (for the run's record)."""

    def close(self) -> None:  # noqa: B027  (optional hook: most executors hold nothing)
        """Release workers."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


EXECUTORS: Registry[type[Executor]] = Registry("executor")


@EXECUTORS.register("inprocess")
class InProcessExecutor(Executor):
    """Runs each trial in this process when :meth:`wait` is called: one slot, no timeout."""

    def __init__(self, objective: Objective, cpus_per_trial: int | None = None) -> None:
        self.objective = objective
        self.cpus_per_trial = cpus_per_trial or torch.get_num_threads()
        self._pending: collections.deque[TrialJob] = collections.deque()

    def submit(self, job: TrialJob) -> None:
        self._pending.append(job)

    def wait(self) -> list[TrialOutcome]:
        return [run_trial(self.objective, self._pending.popleft())] if self._pending else []

    def describe(self) -> dict[str, Any]:
        return {"kind": "in-process", "slots": 1, "cpus_per_trial": self.cpus_per_trial}


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` -> ``(host, port)``; anything else is a :class:`ConfigError`."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"--ray-address must be 'auto' or HOST:PORT (the head's GCS port, 6379 by default), "
            f"got {address!r}"
        )
    return host, int(port)


def _probe(address: str, timeout_s: float) -> None:
    host, port = parse_address(address)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"Ray head at {address} cannot be reached ({reason}, {timeout_s:g} s timeout); "
            "check the address (`ray status` on the head prints it) or drop --ray-address to "
            "start a local cluster"
        ) from None


def _probe_grpc(address: str, timeout_s: float) -> None:
    """A Ray head's GCS speaks gRPC: a port that accepts TCP but never answers the HTTP/2
    handshake is not one (and ``ray.init`` would retry it for minutes, logging each try)."""
    import grpc  # a dependency of ray

    channel = grpc.insecure_channel(address)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout_s)
    except grpc.FutureTimeoutError:
        raise ConfigError(
            f"Ray cluster at {address} did not answer within {timeout_s:g} s (no gRPC server "
            "there: is it the head's GCS port, 6379 by default?); check the address or drop "
            "--ray-address"
        ) from None
    finally:
        channel.close()


def _init_bounded(kwargs: dict[str, Any], timeout_s: float, where: str) -> None:
    """``ray.init(**kwargs)`` given ``timeout_s``: Ray retries an unresponsive head for
    minutes, so it runs in a daemon thread that is abandoned on timeout."""
    import ray

    box: dict[str, BaseException] = {}

    def target() -> None:
        try:
            ray.init(**kwargs)
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc

    thread = threading.Thread(target=target, name="ray-init", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise ConfigError(
            f"Ray cluster at {where} did not answer within {timeout_s:g} s (is it a Ray head? "
            "same Ray version?); check the address or drop --ray-address"
        )
    if "error" in box:
        msg = " ".join(str(box["error"]).split())[:200]
        # Ray sends its token to an address given explicitly only in token mode (by design)
        auth = os.environ.get("RAY_AUTH_MODE", "").lower() != "token"
        hint = (
            " (a head started by `ray start` wants token auth: set RAY_AUTH_MODE=token, token in ~/.ray/auth_token or RAY_AUTH_TOKEN)"
            if auth
            else ""
        )
        raise ConfigError(
            f"cannot join Ray cluster at {where}: {msg}{hint}; check the address, or drop "
            "--ray-address to start a local cluster"
        )


def connect_ray(address: str | None, num_cpus: int, connect_timeout_s: float = 30.0) -> bool:
    """Join or start a Ray cluster; True when this call started (and so owns) it."""
    import ray

    if ray.is_initialized():
        return False
    common: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address is None:
        # "local": a new cluster even when `ray start` left one (or its address file) here
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **common)
        return True
    if address != "auto":
        _probe(address, min(5.0, connect_timeout_s))
        _probe_grpc(address, connect_timeout_s)
    _init_bounded({"address": address, **common}, connect_timeout_s, address)
    return True


@EXECUTORS.register("ray")
class RayExecutor(Executor):
    """Trials as Ray tasks, ``cpus_per_trial`` CPUs each, streamed back as they finish.

    ``workers`` bounds the trials in flight (default: the cluster's CPUs / ``cpus_per_trial``).
    ``timeout_s`` cancels (kills) a trial running longer; it counts from submission, so it
    includes a fresh worker's start-up (importing torch, loading the data).
    """

    def __init__(
        self,
        objective: Objective,
        workers: int | None = None,
        address: str | None = None,
        cpus_per_trial: int = 1,
        timeout_s: float | None = None,
        connect_timeout_s: float = 30.0,
    ) -> None:
        import ray

        if (workers is not None and workers < 1) or cpus_per_trial < 1:
            raise ConfigError(
                f"Ray needs workers >= 1 and cpus_per_trial >= 1, got workers={workers}, "
                f"cpus_per_trial={cpus_per_trial}; fix --workers"
            )
        if timeout_s is not None and not timeout_s > 0:
            raise ConfigError(f"trial timeout must be > 0 s, got {timeout_s}; fix --trial-timeout")
        self.address, self.cpus_per_trial, self.timeout_s = address, cpus_per_trial, timeout_s
        self._owns = connect_ray(address, (workers or 2) * cpus_per_trial, connect_timeout_s)
        cluster_cpus = int(ray.cluster_resources().get("CPU", 0))
        self.slots = workers or max(1, cluster_cpus // cpus_per_trial)
        self._objective = ray.put(objective)
        self._remote = ray.remote(run_trial).options(
            num_cpus=cpus_per_trial, max_retries=0, retry_exceptions=False
        )
        self._running: dict[Any, tuple[int, float]] = {}  # ref -> (trial number, submitted)

    def submit(self, job: TrialJob) -> None:
        ref = self._remote.remote(self._objective, job)
        self._running[ref] = (job.number, time.monotonic())

    def wait(self) -> list[TrialOutcome]:
        import ray

        if not self._running:
            return []
        while True:
            done, _ = ray.wait(list(self._running), num_returns=1, timeout=self._poll_s())
            if done:
                return [self._collect(ref) for ref in done]
            if expired := self._expired():
                return expired

    def _poll_s(self) -> float | None:
        if self.timeout_s is None:
            return None
        oldest = min(t for _, t in self._running.values())
        return max(0.05, oldest + self.timeout_s - time.monotonic())

    def _expired(self) -> list[TrialOutcome]:
        import ray

        now, out = time.monotonic(), []
        for ref, (number, started) in list(self._running.items()):
            if self.timeout_s is not None and now - started >= self.timeout_s:
                ray.cancel(ref, force=True)  # kills the worker process running it
                del self._running[ref]
                error = f"TrialTimeout: no result within {self.timeout_s:g} s; trial cancelled"
                out.append(TrialOutcome(number, "failed", error=error, wall_s=now - started))
        return out

    def _collect(self, ref: Any) -> TrialOutcome:
        import ray

        number, started = self._running.pop(ref)
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as exc:  # the worker died, or Ray lost the task
            msg = " ".join(str(exc).split())[:300]
            wall = time.monotonic() - started
            return TrialOutcome(number, "failed", error=f"{type(exc).__name__}: {msg}", wall_s=wall)

    def describe(self) -> dict[str, Any]:
        import ray

        where = self.address or "local"
        nodes = len([n for n in ray.nodes() if n.get("Alive")])
        return {"kind": "ray", "address": where, "slots": self.slots, "nodes": nodes,
                "cpus_per_trial": self.cpus_per_trial, "timeout_s": self.timeout_s}  # fmt: skip

    def close(self) -> None:
        import ray

        for ref in list(self._running):
            ray.cancel(ref, force=True)
        self._running.clear()
        if self._owns and ray.is_initialized():
            ray.shutdown()
