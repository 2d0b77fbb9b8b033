"""Clip transforms: uint8 until the end, one set of random parameters per clip, crops, MixUp/CutMix."""

from __future__ import annotations

import pytest
import torch

from rs_video.data import UniformSpatialCrop, build_clip_transform
from rs_video.data.transforms import RandomShortSideScaleCrop
from tests.videos import data_cfg

MEAN, STD = 0.45, 0.225


def column_ramp(frames: int = 4, height: int = 48, width: int = 64, step: int = 3) -> torch.Tensor:
    """uint8 (T, 3, H, W) clip whose value is ``step * column`` (identical frames)."""
    ramp = (torch.arange(width) * step).clamp(max=255).to(torch.uint8)
    return ramp.expand(frames, 3, height, width).contiguous()


def unnormalise(video: torch.Tensor) -> torch.Tensor:
    return (video * STD + MEAN) * 255


def test_output_layout_dtype_and_normalisation_values():
    transform = build_clip_transform(data_cfg("."), "val")
    clip = torch.full((4, 3, 48, 64), 200, dtype=torch.uint8)
    out = transform(clip)
    assert out.dtype == torch.float32 and out.shape == (3, 4, 40, 40) and out.is_contiguous()
    assert torch.allclose(out, torch.full_like(out, (200 / 255 - MEAN) / STD), atol=1e-5)
    assert transform.prepare(clip).dtype == torch.uint8  # everything before finalize stays uint8


def test_train_jitter_scale_range_and_crop_position_vary():
    transform = build_clip_transform(data_cfg(".", DATA__RANDOM_FLIP=False), "train")
    torch.manual_seed(0)
    steps, lefts = [], set()
    for _ in range(60):
        out = unnormalise(transform(column_ramp()))
        assert out.shape == (3, 4, 32, 32)
        row = out[0, 0, 16]
        steps.append(float((row[-4] - row[3]) / (len(row) - 7)))
        lefts.add(round(float(row[0])))
    # Input step 3 per column; short side 48 scaled to s in [40, 48] -> output step 3 * 48 / s in [3, 3.6].
    assert 2.95 < min(steps) < 3.1 and 3.45 < max(steps) < 3.65
    assert len(lefts) > 10  # the crop position moves


def test_scale_crop_matches_resize_then_crop():
    from torchvision.transforms.v2 import functional as TF

    crop = RandomShortSideScaleCrop(48, 48, 32)  # fixed scale: short side 48 -> 48, i.e. no resize
    clip = torch.randint(0, 256, (2, 3, 48, 64), dtype=torch.uint8)
    torch.manual_seed(3)
    params = crop.make_params([clip])
    out = crop.transform(clip, params)
    assert torch.equal(out, TF.crop(clip, params["top"], params["left"], 32, 32))


def test_every_frame_gets_the_same_crop_flip_and_randaugment():
    cfg = data_cfg(".", AUG__RAND_AUGMENT=True, AUG__RA_MAGNITUDE=15, AUG__RA_NUM_OPS=3)
    for mode in ("jitter", "inception"):
        cfg.DATA.TRAIN_CROP_MODE = mode
        transform = build_clip_transform(cfg, "train")
        frame = torch.randint(0, 256, (1, 3, 48, 64), dtype=torch.uint8)
        clip = frame.expand(8, -1, -1, -1).contiguous()
        outputs = []
        for seed in range(10):
            torch.manual_seed(seed)
            out = transform(clip)
            assert torch.equal(out[:, :1].expand_as(out), out), mode  # identical frames stay identical
            outputs.append(out[:, 0])
        assert not all(torch.equal(outputs[0], o) for o in outputs[1:])  # but the parameters are random


def test_flip_happens_about_half_the_time_and_can_be_off():
    torch.manual_seed(0)
    on = build_clip_transform(data_cfg("."), "train")
    flipped = [bool(unnormalise(on(column_ramp()))[0, 0, 0, 0] > 100) for _ in range(40)]
    assert 8 < sum(flipped) < 32
    off = build_clip_transform(data_cfg(".", DATA__RANDOM_FLIP=False), "train")
    assert not any(bool(unnormalise(off(column_ramp()))[0, 0, 0, 0] > 100) for _ in range(20))


def test_inception_crop_output_and_bad_settings():
    transform = build_clip_transform(data_cfg(".", DATA__TRAIN_CROP_MODE="inception"), "train")
    assert transform(column_ramp()).shape == (3, 4, 32, 32)
    with pytest.raises(ValueError, match="TRAIN_CROP_MODE"):
        build_clip_transform(data_cfg(".", DATA__TRAIN_CROP_MODE="center"), "train")
    with pytest.raises(ValueError, match=r"need 0 < size <= min_size <= max_size, got 32, 24, 48"):
        build_clip_transform(data_cfg(".", DATA__TRAIN_JITTER_SCALES=[24, 48]), "train")  # the config says so too
    with pytest.raises(ValueError, match="uint8"):
        transform(column_ramp().float())


def test_val_resizes_short_side_and_centre_crops():
    transform = build_clip_transform(data_cfg("."), "val")  # TEST_CROP_SIZE 40
    clip = column_ramp(height=40, width=60)  # short side already 40: no resize, centre columns 10..49
    out = unnormalise(transform(clip))
    assert torch.allclose(out[0, 0, 0], torch.arange(10, 50).float() * 3, atol=1e-3)


@pytest.mark.parametrize("portrait", [False, True])
def test_three_test_crops_are_left_centre_right_or_top_centre_bottom(portrait):
    transform = build_clip_transform(data_cfg("."), "test")  # 3 crops of 40
    clip = column_ramp(height=40, width=70)
    if portrait:
        clip = clip.transpose(-1, -2).contiguous()  # value = 3 * row, 70 x 40
    prepared = transform.prepare(clip)
    starts = []
    for index in range(3):
        out = unnormalise(transform.finalize(prepared, index))
        assert out.shape == (3, 4, 40, 40)
        starts.append(round(float(out[0, 0, 0, 0]) / 3))  # value / 3 = first column (or row) of the crop
    assert starts == [0, 15, 30]
    with pytest.raises(ValueError, match="out of range"):
        transform.finalize(prepared, 3)


def test_uniform_spatial_crop_placement_rule():
    crops = UniformSpatialCrop(10, num_crops=4)
    assert [crops.box(10, 40, i) for i in range(4)] == [(0, 0), (0, 10), (0, 20), (0, 30)]
    assert UniformSpatialCrop(10, 1).box(10, 41, 0) == (0, 15)
    assert [crops.box(31, 10, i) for i in range(4)] == [(0, 0), (7, 0), (14, 0), (21, 0)]
