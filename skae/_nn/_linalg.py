"""Batched linear solves that hold under any torch thread setting."""

import torch


def solve_positive_definite(A, B):
    """Solve ``A @ X = B`` for a batch of symmetric positive definite ``A``.

    By Cholesky factorisation. torch's LU-based ``torch.linalg.solve`` is
    not used: on CPU, once ``torch.set_num_threads`` has been called with
    two or more threads, its batched form hangs or fails ("Pivots given to
    lu_solve must all be greater or equal to 1") on systems of 150 or more
    unknowns (torch 2.13 with oneMKL). Systems that are not numerically
    positive definite are solved by least squares instead.

    Parameters
    ----------
    A : torch.Tensor of shape (n_systems, n, n)
        Symmetric positive definite matrices.

    B : torch.Tensor of shape (n_systems, n, n_rhs)
        Right-hand sides.

    Returns
    -------
    X : torch.Tensor of shape (n_systems, n, n_rhs)
    """
    factor, info = torch.linalg.cholesky_ex(A)
    X = torch.cholesky_solve(B, factor)
    failed = info != 0
    if failed.any():
        X[failed] = torch.linalg.lstsq(A[failed], B[failed], driver="gelsy").solution
    return X
