"""hubconf.py exposes every model, PyTorchVideo style."""

import importlib.util
import os

import torch

import rs_image
import rs_video
from rs_image.models import save_state_dict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_hub_lists_every_model():
    spec = importlib.util.spec_from_file_location("hubconf", os.path.join(ROOT, "hubconf.py"))
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    names = {n for n in dir(hubconf) if callable(getattr(hubconf, n)) and not n.startswith("_")}
    assert set(rs_image.list_models()) | set(rs_video.list_models()) == names


def test_hub_load_random_and_pretrained(tmp_path, monkeypatch):
    tiny = dict(stage_widths=(8, 8, 8, 8), stage_depths=(1, 1, 1, 1), stem_width=8, num_classes=3)
    m = torch.hub.load(ROOT, "rs3d_50", source="local", pretrained=False, **tiny)
    assert m(torch.randn(1, 3, 4, 32, 32)).shape == (1, 3)
    save_state_dict(m, tmp_path / "w.safetensors")
    again = torch.hub.load(ROOT, "rs3d_50", source="local", pretrained=str(tmp_path / "w.safetensors"), **tiny)
    assert torch.equal(again.layer4[0].conv1.weight, m.layer4[0].conv1.weight)
    # A URL goes through torch.hub's downloader (file:// here: no network in tests).
    torch.save({"model_state": m.state_dict()}, tmp_path / "ckpt.pyth")
    url = (tmp_path / "ckpt.pyth").as_uri()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    from_url = torch.hub.load(ROOT, "rs3d_50", source="local", pretrained=url, **tiny)
    assert torch.equal(from_url.head.fc.weight, m.head.fc.weight)
    img = torch.hub.load(ROOT, "resnetrs50", source="local", num_classes=4)
    assert isinstance(img, rs_image.models.ResNetRS) and img.num_classes == 4
