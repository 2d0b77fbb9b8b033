"""Upstream deprecations the user cannot act on, silenced where the upstream import happens (one filter).

fvcore.nn (precise BN, FLOP counts; PyTorchVideo imports it too) and ``pytorchvideo.transforms`` call
``torch.jit.script`` / ``script_method`` when imported, which torch deprecates: theirs to fix, not the user's.
Every import of them in the library goes through :func:`quiet_upstream_import`, which imports the module
with that one warning silenced (later imports reuse the module); the user's own ``torch.jit`` calls still
warn, and importing ``rs_image`` loads neither.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType

__all__ = ["JIT_DEPRECATION", "quiet_upstream_import"]

#: The message of torch's ``torch.jit.script`` / ``script_method`` deprecation.
JIT_DEPRECATION = r".*torch\.jit\.script.* is deprecated"


def quiet_upstream_import(module: str) -> ModuleType:
    """``importlib.import_module(module)`` without torch's jit deprecation warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=JIT_DEPRECATION, category=FutureWarning)
        return importlib.import_module(module)
