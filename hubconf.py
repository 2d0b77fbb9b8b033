"""torch.hub entry points for every rs_image and rs_video model.

    model = torch.hub.load("<owner>/rs_video", "rs3d_50", pretrained=False)
    model = torch.hub.load("<owner>/rs_video", "resnetrs50", pretrained="/path/or/url/resnetrs50.safetensors")

As in PyTorchVideo's hub, ``pretrained`` is False (random init) or, here, any weights source of
``rs_image.models.resolve_weights``: the path or URL of a checkpoint or weights file (native, timm, Keras
``.h5`` or PyTorchVideo), a state dict or a model; ``**kwargs`` go to ``create_model`` (``num_classes``,
architecture overrides, ``features_only``...).
"""

dependencies = ["torch", "torchvision", "fvcore"]

import rs_video  # noqa: E402,F401  (registers the video family)
from rs_image.models import MODELS as _MODELS  # noqa: E402


def _entry_point(name):
    family = _MODELS.family_of(name)

    def entry(pretrained=False, progress=True, **kwargs):
        return _MODELS.create(name, pretrained=pretrained or None, **kwargs)

    entry.__name__ = name
    entry.__qualname__ = name
    entry.__doc__ = (
        f"{name}: see {family.package}.create_model. ``pretrained``: False or a weights source; "
        "``progress`` is accepted for PyTorchVideo compatibility."
    )
    return entry


for _name in _MODELS.list():
    globals()[_name] = _entry_point(_name)
