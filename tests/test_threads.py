import torch
from threadpoolctl import threadpool_limits

from skae._threads import SMALL_WORK, torch_threads


def test_small_work_runs_on_one_thread_and_restores():
    before = torch.get_num_threads()
    with torch_threads(SMALL_WORK - 1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_environment_limit_applies_for_the_block(monkeypatch):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        with torch_threads(SMALL_WORK * 4):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_threadpoolctl_blas_limit_applies_for_the_block(monkeypatch):
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with threadpool_limits(limits=1, user_api="blas"), torch_threads(SMALL_WORK * 4):
            assert torch.get_num_threads() == 1
        with torch_threads(SMALL_WORK * 4):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
