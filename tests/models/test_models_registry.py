"""One model registry: ``rs_image.models.MODELS`` holds every family (image; video and detectors once
``rs_video`` is imported), one ``create_model`` answers every name, and hub entry points, export and the
reports read it instead of dispatching between registries."""

from __future__ import annotations

import pytest
import torch

import rs_image
import rs_video
from rs_image.models import IMAGE_MODELS, MODELS, UnknownModelError
from rs_image.report.catalog import default_catalog
from rs_video.models import VIDEO_MODELS

TINY = dict(stage_widths=(8, 16, 32, 64), stage_depths=(1, 1, 1, 1), stem_width=8)


def test_families_and_names():
    assert [(f.name, f.package, f.task) for f in MODELS.families()] == [("image", "rs_image", "image"),
                                                                        ("video", "rs_video", "video")]
    assert MODELS.list() == IMAGE_MODELS.list() + VIDEO_MODELS.list()
    assert MODELS.list(family="video") == rs_video.list_models() and rs_image.list_models() == IMAGE_MODELS.list()
    assert MODELS.family_of("resnetrs350.i320").name == "image" and MODELS.family_of("rs3d_50_detection").name == "video"


def test_one_create_model_answers_every_name_and_the_views_agree():
    torch.manual_seed(0)
    video = rs_image.create_model("rs3d_50", num_classes=5, **TINY)
    torch.manual_seed(0)
    same = rs_video.create_model("rs3d_50", num_classes=5, **TINY)
    assert all(torch.equal(a, b) for a, b in zip(video.state_dict().values(), same.state_dict().values()))
    assert video.pretrained_cfg["architecture"] == "rs3d_50"
    assert rs_image.create_model("resnetrs50", num_classes=3, **TINY).pretrained_cfg["architecture"] == "resnetrs50"
    # the family's own keywords pass through: inflation belongs to the video family
    image = rs_image.create_model("resnetrs50", num_classes=0, **TINY)
    inflated = rs_image.create_model("rs3d_50", num_classes=0, inflate_from=image, **TINY)
    assert inflated(torch.zeros(1, 3, 4, 32, 32)).shape == (1, 256)  # pooled res5 features (64 x 4)
    with pytest.raises(UnknownModelError, match=r"unknown model 'rs3d_5'; did you mean rs3d_50"):
        rs_image.create_model("rs3d_5")
    with pytest.raises(UnknownModelError):  # a family's view answers its own names only
        rs_video.create_model("resnetrs50")


def test_a_family_registers_once_and_a_name_belongs_to_one_family():
    with pytest.raises(ValueError, match="registered twice"):
        MODELS.add_family(VIDEO_MODELS, rs_video.create_model, task="video")


def test_hub_and_reports_read_the_one_registry():
    import hubconf

    entries = [n for n in dir(hubconf) if not n.startswith("_") and callable(getattr(hubconf, n))]
    assert sorted(entries) == sorted(MODELS.list())
    assert "rs_video.create_model" in hubconf.rs3d_50.__doc__ and "rs_image.create_model" in hubconf.resnetrs50.__doc__
    ours = [s for s in default_catalog().sources if not s.prefix]
    assert [(s.family, s.task) for s in ours] == [("rs_image", "image"), ("rs_video", "video")]
