"""Opt-in fix that makes ``import pytorchvideo.transforms`` work on torchvision >= 0.17.

PyPI ``pytorchvideo==0.1.5`` imports ``torchvision.transforms.functional_tensor``, which torchvision
removed in 0.17; every ``pytorchvideo.transforms`` import then fails with ``ModuleNotFoundError``. It
only uses that module's ``affine``, which torchvision still ships as the private
``torchvision.transforms._functional_tensor``. :func:`enable_pytorchvideo_transforms` registers the
private module under the old name and imports ``pytorchvideo.transforms``.

Our loader never calls this: its transforms are built on ``torchvision.transforms.v2``. It is for users
who want PyTorchVideo's own transforms next to ours, and for the benchmark's ``ptv-recipe`` rows. It rests
on a private torchvision module, so it may stop working in a future torchvision (it then raises
ImportError saying so). Never map the old name to the public ``torchvision.transforms.functional``: its
``affine`` takes different arguments.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from rs_image.upstream import quiet_upstream_import

__all__ = ["enable_pytorchvideo_transforms"]

_OLD_NAME = "torchvision.transforms.functional_tensor"


def enable_pytorchvideo_transforms() -> ModuleType:
    """Makes ``pytorchvideo.transforms`` importable and returns it.

    Example::

        from rs_video.data import enable_pytorchvideo_transforms
        ptv_transforms = enable_pytorchvideo_transforms()
        ptv_transforms.ShortSideScale(256)

    Raises:
        ImportError: pytorchvideo is not installed, or torchvision has neither the old nor the private
            module.
    """
    if _OLD_NAME not in sys.modules:
        try:
            importlib.import_module(_OLD_NAME)  # old torchvision: nothing to do
        except ModuleNotFoundError:
            try:
                private = importlib.import_module("torchvision.transforms._functional_tensor")
            except ModuleNotFoundError as error:
                raise ImportError(
                    "this torchvision has neither transforms.functional_tensor nor transforms._functional_tensor; "
                    "install pytorchvideo from git main instead of the shim"
                ) from error
            sys.modules[_OLD_NAME] = private
    return quiet_upstream_import("pytorchvideo.transforms")  # it scripts its augmentations at import
