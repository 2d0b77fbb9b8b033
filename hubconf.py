"""torch.hub entry points for every rs_image and rs_video model.

    model = torch.hub.load("<owner>/rs_video", "rs3d_50", pretrained=False)
    model = torch.hub.load("<owner>/rs_video", "resnetrs50", pretrained="/path/or/url/resnetrs50.safetensors")

As in PyTorchVideo's hub, ``pretrained`` is False (random init) or, here, any weights source of
``rs_image.models.resolve_weights``: the path or URL of a checkpoint or weights file (native, timm, Keras
``.h5`` or PyTorchVideo), a state dict or a model; ``**kwargs`` go to ``create_model`` (``num_classes``,
architecture overrides, ``features_only``...).
"""

dependencies = ["torch", "torchvision", "fvcore"]

import rs_image as _rs_image  # noqa: E402
import rs_video as _rs_video  # noqa: E402


def _entry_point(create, name):
    def entry(pretrained=False, progress=True, **kwargs):
        return create(name, pretrained=pretrained or None, **kwargs)

    entry.__name__ = name
    entry.__qualname__ = name
    entry.__doc__ = (
        f"{name}: see {create.__module__}.create_model. ``pretrained``: False or a weights source; "
        "``progress`` is accepted for PyTorchVideo compatibility."
    )
    return entry


for _create, _names in ((_rs_image.create_model, _rs_image.list_models()), (_rs_video.create_model, _rs_video.list_models())):
    for _name in _names:
        globals()[_name] = _entry_point(_create, _name)
