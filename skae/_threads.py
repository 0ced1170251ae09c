"""Thread limits for torch computations."""

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
    """
    previous = torch.get_num_threads()
    if work is not None and work < SMALL_WORK:
        limit = 1
    else:
        limits = [_env_thread_limit(), _blas_thread_limit()]
        limit = min((n for n in limits if n is not None), default=None)
    if limit is not None and limit < previous:
        torch.set_num_threads(limit)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)
