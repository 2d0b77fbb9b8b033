"""rs_image: ResNet-RS image models, ImageNet data and the shared ResNet-RS training recipe."""

from .models import create_model, list_models

__version__ = "0.1.0"
__all__ = ["create_model", "list_models", "__version__"]
