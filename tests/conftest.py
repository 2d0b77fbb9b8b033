"""Shared test helpers. Tests run on the CPU with small inputs and data they make themselves."""

import logging
import os
import sys

import pytest
import torch

# Make the `tests/` helpers importable (e.g. `from tests.videos import ...`).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import rs_video.task  # noqa: E402,F401  (registers TASK video and its config keys, as the tools do)

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

_LIBRARY_LOGGERS = ("rs_image", "rs_video")


@pytest.fixture(autouse=True)
def _library_logging_restored():
    """In-process runs change the library's loggers (``setup_logging`` adds handlers to a tmp dir, the predict
    CLI sets WARNING); undo it after each test so that a later test's ``caplog`` sees the library's INFO
    messages whatever ran before."""
    loggers = [logging.getLogger(name) for name in _LIBRARY_LOGGERS]
    saved = [(lg, lg.level, list(lg.handlers), lg.propagate) for lg in loggers]
    yield
    for lg, level, handlers, propagate in saved:
        for h in lg.handlers:
            if h not in handlers:
                h.close()
        lg.setLevel(level)
        lg.handlers[:] = handlers
        lg.propagate = propagate


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BatchNorm random affine parameters and running statistics.

    ResNet-RS zero-initialises the last BN gamma of every block, which turns every residual branch off;
    an equivalence test on a fresh model would then be blind to bugs inside the branches.
    """
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


@pytest.fixture(scope="module")
def one_torch_thread():
    """For modules of tiny networks: a second intra-op thread only adds synchronisation on a busy 2-core box.
    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def rand_bn():
    return randomize_bn


@pytest.fixture
def timm():
    """The timm module; a test that compares with timm (a test extra) is skipped without it."""
    return pytest.importorskip("timm")
