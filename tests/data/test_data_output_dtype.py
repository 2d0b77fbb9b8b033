"""DATA.OUTPUT_DTYPE uint8: raw clips out of the data set, normalised by the engine on the device, giving
the same model input as the float32 path (train, val, test, failed views, MixUp, channels-last)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import default_collate

from rs_image.data import normalize_uint8
from rs_image.engine import ConfigError, load_config
from rs_image.recipe import BatchMixup
from rs_video.data import build_clip_transform, build_video_dataset, collate_clips
from rs_video.task import VideoTask
from tests.videos import data_cfg, list_dataset


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """3 good 24-frame videos per split and a garbage file (a failed view in test mode)."""
    return list_dataset(tmp_path_factory.mktemp("dtype"), num_videos=3, broken=("garbage",))


def cfg_for(root, output_dtype: str, **overrides):
    overrides.setdefault("DATA__MAX_FAILURE_FRACTION", 1.0)
    # Distinct per-channel statistics, so that a channel mix-up would show.
    return data_cfg(root, DATA__OUTPUT_DTYPE=output_dtype, DATA__MEAN=[0.4, 0.5, 0.6], DATA__STD=[0.2, 0.25, 0.3],
                    **overrides)


def items(dataset, indices, seed=0):
    out = []
    for index in indices:
        torch.manual_seed(seed + index)  # the same random crop/flip in both data sets
        out.append(dataset[index])
    return out


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_uint8_batches_normalised_by_the_task_equal_float32_batches(root, split):
    float_set = build_video_dataset(cfg_for(root, "float32"), split)
    uint8_set = build_video_dataset(cfg_for(root, "uint8"), split)
    indices = range(len(uint8_set)) if split == "test" else range(3)  # test: all views, incl. a failed video
    floats = collate_clips(items(float_set, indices))
    raw_items = items(uint8_set, indices)
    raw = collate_clips(raw_items)
    assert raw["video"].dtype == torch.uint8 and floats["video"].dtype == torch.float32
    assert raw["video"].shape == floats["video"].shape and floats["video"].is_contiguous()
    # The engine's collate stacks uint8 clips in their (T, H, W, C) memory order: same values, no
    # de-interleaving on the CPU.
    reference = default_collate(raw_items)
    assert torch.equal(raw["video"], reference["video"]) and torch.equal(raw["label"], reference["label"])
    assert raw["video"].is_contiguous(memory_format=torch.channels_last_3d)
    if split == "test":
        assert raw["failed"].any() and not torch.count_nonzero(raw["video"][raw["failed"]])
    task, cfg = VideoTask(), cfg_for(root, "uint8")
    device = torch.device("cpu")
    prepared = task.prepare_input(raw, cfg, device)
    good = ~raw["failed"] if split == "test" else torch.ones(len(indices), dtype=torch.bool)
    torch.testing.assert_close(prepared[good], floats["video"][good], rtol=0, atol=1e-6)
    assert torch.equal(task.prepare_input(floats, cfg, device), floats["video"])  # floats pass through
    # channels-last (MODEL.CHANNELS_LAST) is applied while normalising: same values, other layout.
    last = task.prepare_input(raw, cfg, device, torch.channels_last_3d)
    assert last.is_contiguous(memory_format=torch.channels_last_3d) and torch.equal(last, prepared)


def test_uint8_transform_output_is_the_unnormalised_crop():
    cfg = data_cfg(".", DATA__OUTPUT_DTYPE="uint8")
    clip = torch.randint(0, 256, (4, 3, 40, 60), dtype=torch.uint8)
    raw = build_clip_transform(cfg, "val")(clip)  # short side already 40: a centre crop of columns 10..49
    assert raw.dtype == torch.uint8 and torch.equal(raw, clip[..., 10:50].permute(1, 0, 2, 3))
    floats = build_clip_transform(data_cfg(".", DATA__MEAN=[0.45] * 3, DATA__STD=[0.225] * 3), "val")(clip)
    expected = (clip[..., 10:50].permute(1, 0, 2, 3).float() / 255 - 0.45) / 0.225
    torch.testing.assert_close(floats, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(normalize_uint8(raw[None], [0.45] * 3, [0.225] * 3)[0], floats, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="DATA.OUTPUT_DTYPE"):
        build_clip_transform(data_cfg(".", DATA__OUTPUT_DTYPE="float16"), "val")
    with pytest.raises(ValueError, match="uint8"):
        normalize_uint8(raw.float()[None], [0.45] * 3, [0.225] * 3)


def test_mixup_after_normalising_uint8_matches_float32(root):
    cfg = cfg_for(root, "uint8", MIXUP__ENABLE=True)
    float_batch = default_collate(items(build_video_dataset(cfg_for(root, "float32"), "val"), range(3)))
    raw_batch = default_collate(items(build_video_dataset(cfg, "val"), range(3)))
    mixup = BatchMixup.from_cfg(cfg)
    results = []
    for batch in (float_batch, raw_batch):
        torch.manual_seed(5)
        results.append(mixup(VideoTask().prepare_input(batch, cfg, torch.device("cpu")), batch["label"]))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=1e-6)
    assert torch.equal(results[0][1], results[1][1])


def test_config_key_and_trainer_with_uint8_clips_and_mixup(tmp_path, root):
    from rs_image.engine import Trainer, run_test

    with pytest.raises(ConfigError, match="DATA.OUTPUT_DTYPE"):
        load_config(None, ["DATA.OUTPUT_DTYPE", "float16"])
    from tests.helpers import tiny_opts

    cfg = load_config(None, tiny_opts(
        tmp_path / "out", "video", "MODEL.NUM_CLASSES", "2", "TEST.BATCH_SIZE", "6", "SOLVER.BASE_LR", "0.1",
        "LOG_PERIOD", "10", "DATA.PATH_TO_DATA_DIR", str(root), "DATA.TRAIN_JITTER_SCALES", "[40, 48]",
        "DATA.TEST_CROP_SIZE", "40", "DATA.MAX_FAILURE_FRACTION", "0.5", "DATA.OUTPUT_DTYPE", "uint8",
        "MIXUP.ENABLE", "True", "TRAIN.EVAL_PERIOD", "1",
    ))
    metrics = Trainer(cfg).train()
    assert metrics["val_num_samples"] == 4  # the garbage val entry is replaced by a good video
    summary = run_test(cfg)
    assert (summary.num_samples, summary.num_evaluated, summary.num_failed) == (4, 3, 1)
