"""Settings of torch's CPU threads: how many run, and how they treat denormals."""

import ctypes
import functools
import os
from contextlib import contextmanager

import torch


def _env_thread_limit():
    """The smallest thread count set by OMP_NUM_THREADS or similar, if any.

    joblib's worker processes and dask's nannies set these variables to
    keep each worker to its share of the cores.
    """
    limits = []
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            limits.append(int(value))
    return min(limits, default=None)


@functools.cache
def _blas_controller():
    """A threadpoolctl controller of the libraries loaded so far, or None.

    Finding the libraries takes milliseconds; reading their current limits
    from a controller found once takes microseconds.
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def _blas_thread_limit():
    """The smallest thread count of the BLAS libraries numpy uses, if known.

    ``threadpoolctl.threadpool_limits`` (which scikit-learn and joblib use
    to keep nested parallelism in check) lowers these; torch does not see
    such limits by itself.
    """
    controller = _blas_controller()
    if controller is None:
        return None
    limits = [info["num_threads"] for info in controller.info() if info["user_api"] == "blas"]
    return min(limits, default=None)


# Below this many multiply-adds per call, torch's parallel regions cost more
# than they gain: a mini-batch step of a small network runs in tens of
# microseconds on one thread, while waking a second one costs as much, and
# far more on a machine whose cores are busy. On a busy two-core machine,
# encoding 4096 MNIST rows with 32 codes (10**8 multiply-adds) took 8 ms on
# one thread and 38 ms on two.
SMALL_WORK = 2**28


@contextmanager
def torch_threads(work=None):
    """Run torch with at most the thread count the process is limited to.

    torch reads the limit once, when it is imported; a limit set later in
    the environment (as joblib does before starting work in a process that
    had already imported torch), or on the BLAS libraries with
    ``threadpoolctl``, is applied for the duration of the block, and
    torch's previous setting is restored after it.

    Parameters
    ----------
    work : int or None
        Multiply-adds per torch call in the block, e.g. batch size times the
        number of parameters. Below ``SMALL_WORK`` the block runs on one
        thread.

    Yields
    ------
    spare : int
        Threads the process may use beyond those torch runs in the block.
    """
    previous = torch.get_num_threads()
    limits = [previous, _env_thread_limit(), _blas_thread_limit()]
    allowed = min(n for n in limits if n is not None)
    limit = 1 if work is not None and work < SMALL_WORK else allowed
    if limit < previous:
        torch.set_num_threads(limit)
    try:
        yield max(allowed - limit, 0)
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


# Denormal floats
#
# Adam with an L2 penalty drives a weight that gets no gradient from the loss
# (one fed by a dead ReLU unit, or by a pixel that is always zero) toward zero
# geometrically: the penalty's shrinking gradient is divided by a second
# moment that remembers larger ones. Within a few thousand steps such weights
# reach the denormal range below 1e-38 (float32), where each multiplication
# producing a denormal takes a hundred times longer: a fit of a deep network
# with alpha=1e-2 ran 10 times slower per epoch once they appeared. Flushing
# denormals to zero, as TensorFlow does by default, keeps every step at full
# speed and changes no result by more than 1e-38.

_PARALLEL_BODY = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


@_PARALLEL_BODY
def _flush_on(data):
    torch.set_flush_denormal(True)


@_PARALLEL_BODY
def _flush_off(data):
    torch.set_flush_denormal(False)


@functools.cache
def _omp_parallel():
    """The OpenMP runtime's ``GOMP_parallel`` entry point, if torch loaded one.

    Running a function on each thread of torch's OpenMP pool is the only way
    to reach their floating-point settings: ``torch.set_flush_denormal``
    changes the calling thread's alone.
    """
    try:
        parallel = ctypes.CDLL(None).GOMP_parallel
    except (AttributeError, OSError, TypeError):
        # No OpenMP runtime with that entry point is loaded, or, on Windows,
        # no handle to the process's own symbols.
        return None
    parallel.argtypes = [_PARALLEL_BODY, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
    parallel.restype = None
    return parallel


def _set_flush_denormal(mode):
    """Set denormal flushing on this thread and torch's OpenMP threads.

    Returns whether the CPU supports it.
    """
    if not torch.set_flush_denormal(mode):
        return False
    n_threads = torch.get_num_threads()
    parallel = _omp_parallel()
    if n_threads > 1 and parallel is not None:
        parallel(_flush_on if mode else _flush_off, None, n_threads, 0)
    return True


def _denormals_flushed():
    """Whether this thread already flushes denormals to zero."""
    return torch.tensor(1e-39, dtype=torch.float32).item() == 0.0


@contextmanager
def flush_denormal():
    """Flush denormal floats to zero in torch's CPU threads for the block.

    Enter it after setting the thread count for the block, so that all the
    threads the block uses are covered. The previous setting is restored on
    exit; a process that already flushes denormals is left as it is.
    """
    if _denormals_flushed() or not _set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        _set_flush_denormal(False)
