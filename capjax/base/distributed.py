"""One run over many processes on JAX's distributed runtime (docs/method.md §9).

A multi-process run is one SPMD program: every process runs the same code on the same
inputs, and each computes only the candidates whose lanes sit on its own devices of one
global mesh (:func:`capjax.base.sharding.candidate_mesh` over ``jax.devices()``). What
must be the same everywhere but is decided or read in one place (a resumed checkpoint,
the engine's next rung, an error) is made on process 0 and sent to the others with
:func:`shared`; what every process computed a part of comes back whole with :func:`gathered`.
Process 0 does every write.

:func:`initialize` wraps ``jax.distributed.initialize`` so that each way a start can go
wrong ends within ``timeout_s`` in one line that names the flag to fix, rather than in a
hang or in the runtime's abort: a coordinator nobody reaches, ``--num-processes`` that
differ between processes, two processes with one ``--process-id``.
"""

from __future__ import annotations

import os
import pickle
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import numpy as np
from jax.experimental import multihost_utils

from capjax.base.validation import CapjaxInputError

T = TypeVar("T")

INIT_TIMEOUT_S = 60
"""Seconds a process waits for every process to join before it gives up."""
COORDINATOR_GRACE_S = 5
"""Seconds process 0 waits beyond the others before it gives up."""
JOINED_EXIT_CODE = 2
"""Exit code of a process that gave up waiting (the CLI's code for bad input)."""


def is_primary() -> bool:
    """Whether this is process 0, the one that holds the run's lock and writes its files."""
    return jax.process_index() == 0


def orbax_primary_only() -> Any:
    """orbax's multiprocessing options for a checkpoint that process 0 alone saves and restores.

    capjax hands orbax host arrays already gathered, and calls it inside :func:`shared`, so
    orbax must not wait at its barriers for processes that never call it.
    """
    import orbax.checkpoint as ocp  # here: orbax is heavy and only checkpoints need it

    return ocp.options.MultiprocessingOptions(primary_host=0, active_processes={0})


def _parse_address(coordinator: str) -> tuple[str, int]:
    host, sep, port = str(coordinator).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CapjaxInputError(f"--coordinator {coordinator!r} is not HOST:PORT; pass e.g. --coordinator node0:1234")
    return host, int(port)


def _wait_for_listener(host: str, port: int, deadline: float) -> None:
    """Return once something accepts connections at ``host:port``; a one-line error at ``deadline``."""
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise CapjaxInputError(
                    f"no coordinator answers at {host}:{port} (--coordinator); start process 0 (--process-id 0) "
                    "there first, or fix the address"
                ) from None
            time.sleep(0.2)


def _give_up_after(seconds: float, message: str) -> threading.Timer:
    """A timer that ends this process with ``message`` (the runtime would hang or abort instead)."""
    def fire() -> None:
        print(f"capjax: error: {message}", file=sys.stderr, flush=True)
        os._exit(JOINED_EXIT_CODE)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    return timer


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
               *, auto: bool = False, timeout_s: float = INIT_TIMEOUT_S) -> bool:
    """Join a multi-process run; returns whether one was joined.

    Either all three of ``coordinator`` (``HOST:PORT`` of process 0), ``num_processes``
    and ``process_id`` are given, or none with ``auto=True`` (the runtime detects SLURM
    and TPU pods), or none at all (one process: nothing to do). Must run before anything
    touches a device. Within ``timeout_s`` every process has joined, or each gives up
    with a one-line error (exit code :data:`JOINED_EXIT_CODE` once the runtime has begun
    to connect, since its threads cannot be interrupted).
    """
    given = {"--coordinator": coordinator, "--num-processes": num_processes, "--process-id": process_id}
    if all(v is None for v in given.values()):
        if not auto:
            return False
        kwargs: dict[str, Any] = {}
        where = "the cluster's coordinator"
    else:
        missing = [flag for flag, v in given.items() if v is None]
        if missing:
            raise CapjaxInputError(f"a multi-process run needs {', '.join(given)}; pass {', '.join(missing)} too")
        host, port = _parse_address(coordinator)
        if isinstance(num_processes, bool) or not isinstance(num_processes, int) or num_processes < 1:
            raise CapjaxInputError(f"--num-processes {num_processes!r}: pass a whole number >= 1")
        if isinstance(process_id, bool) or not isinstance(process_id, int) or not 0 <= process_id < num_processes:
            raise CapjaxInputError(f"--process-id {process_id!r}: pass one of 0..{num_processes - 1}, "
                                   "a different one on each process")
        deadline = time.monotonic() + timeout_s
        if process_id != 0:
            _wait_for_listener(host, port, deadline)
        kwargs = dict(coordinator_address=f"{host}:{port}", num_processes=num_processes, process_id=process_id)
        where = f"the coordinator at {host}:{port}"
    left = max(deadline - time.monotonic(), 1.0) if kwargs else timeout_s
    if kwargs.get("process_id") == 0:
        # The others' runtime aborts the moment process 0 ends, so process 0 gives up last:
        # each of them prints its own error first.
        left += COORDINATOR_GRACE_S
    timer = _give_up_after(left, (
        f"not every process joined {where} within {timeout_s:.0f} s; start all of them, each with the same "
        "--num-processes and its own --process-id (two with one id, or different counts, never join)"
    ))
    try:
        # The runtime's own deadline comes after ours, so that ours is the error the user reads.
        jax.distributed.initialize(**kwargs, initialization_timeout=int(left) + 60)
        counts = per_process(num_processes or jax.process_count())
    finally:
        timer.cancel()
    counts = sorted(set(counts))
    if counts != [jax.process_count()]:
        raise CapjaxInputError(
            f"--num-processes differs between processes ({', '.join(map(str, counts))}) while "
            f"{jax.process_count()} joined; pass the same --num-processes to every process"
        )
    return True


def gathered(tree: Any) -> Any:
    """``tree`` with every leaf whole, as NumPy, on every process.

    A leaf sharded over the global mesh is all-gathered (a collective: every process must
    call this in the same order); a leaf this process holds whole is just fetched.
    """
    def one(leaf: Any) -> np.ndarray:
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
        return np.asarray(jax.device_get(leaf))

    return jax.tree.map(one, tree)


def per_process(value: int) -> tuple[int, ...]:
    """Every process's ``value``, by process index (a collective; ``(value,)`` in one process)."""
    if jax.process_count() == 1:
        return (int(value),)
    return tuple(int(v) for v in np.ravel(multihost_utils.process_allgather(np.array(value, np.int64))))


def _broadcast_bytes(data: bytes) -> bytes:
    size = int(multihost_utils.broadcast_one_to_all(np.array(len(data), np.int64)))
    buffer = np.frombuffer(data, np.uint8) if is_primary() else np.zeros(size, np.uint8)
    return np.asarray(multihost_utils.broadcast_one_to_all(buffer)).tobytes()


class _Failed:
    """What process 0 sends instead of a result when its step raised."""

    def __init__(self, err: BaseException):
        self.input_error = isinstance(err, CapjaxInputError)
        self.message = str(err) if self.input_error else f"process 0 failed: {type(err).__name__}: {err}"


def shared(fn: Callable[[], T]) -> T:
    """``fn()`` run on process 0 only, its result on every process (a collective).

    When ``fn`` raises on process 0, every process raises: process 0 its own exception,
    the others a :class:`CapjaxInputError` (or ``RuntimeError``) with its message, so that
    no process waits for a result that will not come. One process: just ``fn()``.
    """
    if jax.process_count() == 1:
        return fn()
    result: Any = None
    error: BaseException | None = None
    if is_primary():
        try:
            result = fn()
        except BaseException as err:  # noqa: BLE001 - the others must hear of any failure, then it re-raises
            error, result = err, _Failed(err)
    got = pickle.loads(_broadcast_bytes(pickle.dumps(result) if is_primary() else b""))
    if error is not None:
        raise error
    if isinstance(got, _Failed):
        raise (CapjaxInputError if got.input_error else RuntimeError)(got.message)
    return got
