"""rs_video: ResNet-RS video backbones (3D, (2+1)D), 2D-to-3D inflation, Kinetics data, PyTorchVideo interop."""

from rs_image import __version__

from .models import create_model, from_pytorchvideo, inflate, list_models

__all__ = ["create_model", "list_models", "inflate", "from_pytorchvideo", "__version__"]
