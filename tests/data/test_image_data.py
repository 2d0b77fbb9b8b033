"""ImageNet-style folder data: real JPEG trees with broken files, RS transforms, failure policy."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from rs_image.data import (
    ImageFolderDataset,
    RandAugmentTF,
    build_eval_transform,
    build_image_dataset,
    build_train_transform,
)
from rs_image.engine.config import get_cfg
from tests.images import write_jpeg

CLASSES = ("ant", "bee", "cat")
SIZE = 24


@pytest.fixture()
def image_tree(tmp_path: Path) -> Path:
    """train/<3 classes>/ with 4 JPEGs each, plus one corrupt and one zero-byte file in train/bee;
    val/ with two of the classes (cat missing) and a grey-scale JPEG."""
    rng = np.random.default_rng(0)
    for label, name in enumerate(CLASSES):
        for i in range(4):
            # Each class has its own flat colour so that a label can be checked against the pixels.
            rgb = np.zeros((30 + i, 40, 3), np.uint8)
            rgb[..., label] = 200
            write_jpeg(tmp_path / "train" / name / f"{name}_{i}.JPEG", rgb)
    (tmp_path / "train" / "bee" / "corrupt.JPEG").write_bytes(b"\xff\xd8\xff\xe0" + rng.bytes(300))
    (tmp_path / "train" / "bee" / "empty.JPEG").write_bytes(b"")
    write_jpeg(tmp_path / "val" / "ant" / "a.JPEG", np.full((36, 28, 3), 90, np.uint8))
    grey = tmp_path / "val" / "bee" / "grey.JPEG"
    grey.parent.mkdir(parents=True)
    Image.fromarray(np.full((36, 28), 150, np.uint8), mode="L").save(grey, format="JPEG")
    return tmp_path


def _cfg(root: Path, model: str = "resnetrs50", **data):
    cfg = get_cfg()
    cfg.TASK = "image"
    cfg.MODEL.NAME = model
    cfg.MODEL.NUM_CLASSES = len(CLASSES)
    cfg.DATA.PATH_TO_DATA_DIR = str(root)
    cfg.DATA.TRAIN_CROP_SIZE = SIZE
    cfg.DATA.TEST_CROP_SIZE = SIZE
    cfg.DATA.MEAN = [0.485, 0.456, 0.406]
    cfg.DATA.STD = [0.229, 0.224, 0.225]
    cfg.DATA.INTERPOLATION = "bicubic"
    cfg.AUG.RAND_AUGMENT = True
    for key, value in data.items():
        setattr(cfg.DATA, key, value)
    return cfg


def _channel_of_label(image: torch.Tensor) -> int:
    """The dominant channel of a (normalised) flat-colour image."""
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    return int((image * std + mean).mean(dim=(1, 2)).argmax())


def _rs_randaugment(dataset: ImageFolderDataset) -> RandAugmentTF:
    (ra,) = [t for t in dataset.transform.transforms if isinstance(t, RandAugmentTF)]
    return ra


def test_train_split_substitutes_broken_images_and_counts_them(image_tree: Path, caplog) -> None:
    cfg = _cfg(image_tree)
    cfg.AUG.RAND_AUGMENT = False  # colour ops would hide which class folder the pixels came from
    dataset = build_image_dataset(cfg, "train")
    assert dataset.classes == list(CLASSES)
    assert len(dataset) == 14  # broken files are listed; they are replaced when read
    broken = {i for i, (p, _) in enumerate(dataset.samples) if Path(p).name in ("corrupt.JPEG", "empty.JPEG")}
    assert len(broken) == 2

    caplog.set_level(logging.WARNING, logger="rs_image.data.failures")
    good = set(range(len(dataset))) - broken

    def passed_over(index: int) -> int:  # candidates before the first good one (epoch 0: plain int indices)
        return next(a for a in range(11) if dataset.policy.candidate(index, 0, a) in good)

    total_failed = 0
    for _epoch in range(2):
        loader = DataLoader(dataset, batch_size=5, shuffle=False, num_workers=0)
        for batch in loader:
            assert batch["image"].shape[1:] == (3, SIZE, SIZE) and batch["image"].dtype == torch.float32
            total_failed += int(batch["failed_reads"].sum())
            for image, label, index in zip(batch["image"], batch["label"], batch["index"]):
                assert int(index) not in broken
                assert dataset.samples[int(index)][1] == int(label)
                assert _channel_of_label(image) == int(label)  # the pixels belong to the returned label
    # Each broken file is replaced in every epoch, counted exactly; its warning is printed only once.
    assert total_failed == 2 * sum(passed_over(i) for i in broken) and total_failed >= 4
    assert set(dataset.failures) == {dataset.samples[i][0] for i in broken}
    assert dataset.num_failed == 2
    warnings = [r for r in caplog.records if "skipping image" in r.getMessage()]
    assert len(warnings) == 2


def test_substitute_is_deterministic(image_tree: Path) -> None:
    a = build_image_dataset(_cfg(image_tree), "train")
    b = build_image_dataset(_cfg(image_tree), "train")
    broken = next(i for i, (p, _) in enumerate(a.samples) if Path(p).name == "empty.JPEG")
    assert a[broken]["index"] == b[broken]["index"]
    assert a[broken]["failed_reads"] >= 1


def test_retries_are_bounded(tmp_path: Path) -> None:
    for i in range(3):
        (tmp_path / "train" / "x").mkdir(parents=True, exist_ok=True)
        (tmp_path / "train" / "x" / f"{i}.jpg").write_bytes(b"not a jpeg")
    dataset = ImageFolderDataset(tmp_path / "train", build_eval_transform(SIZE), num_retries=4)
    tried = {dataset.policy.candidate(0, 0, a) for a in range(5)}
    message = (r"all 3 images failed to load" if len(tried) == 3 else
               r"could not load image 0 or any of 4 substitutes \(DATA.NUM_RETRIES=4\).*0\.jpg: unreadable")
    with pytest.raises(RuntimeError, match=message):
        dataset[0]
    assert dataset.num_failed == len(tried)


def test_test_split_marks_failures_and_keeps_every_item(image_tree: Path) -> None:
    # No test/ folder: "test" evaluates val/; here we point a test-mode dataset at train/ for broken files.
    dataset = ImageFolderDataset(image_tree / "train", build_eval_transform(SIZE), mode="test")
    items = [dataset[i] for i in range(len(dataset))]
    failed = [it for it in items if it["failed"]]
    assert {Path(dataset.samples[it["index"]][0]).name for it in failed} == {"corrupt.JPEG", "empty.JPEG"}
    assert all(it["image"].shape == (3, SIZE, SIZE) for it in items)
    assert all(float(it["image"].abs().sum()) == 0 for it in failed)
    assert [it["index"] for it in items] == list(range(len(dataset)))
    assert dataset.num_failed == 2
    batch = next(iter(DataLoader(dataset, batch_size=len(dataset))))
    assert batch["failed"].sum() == 2


def test_val_uses_train_classes_and_eval_transform(image_tree: Path) -> None:
    cfg = _cfg(image_tree)
    val = build_image_dataset(cfg, "val")
    test = build_image_dataset(cfg, "test")  # no test/: evaluates val/
    assert val.class_to_idx == {"ant": 0, "bee": 1, "cat": 2}
    assert sorted(label for _, label in val.samples) == [0, 1]
    assert len(test) == len(val) and test.mode == "test"
    item = val[1]  # the grey-scale JPEG decodes to 3 channels
    assert item["image"].shape == (3, SIZE, SIZE)
    assert not any(isinstance(t, RandAugmentTF) for t in val.transform.transforms)


def test_eval_transform_crops_the_centre_fraction() -> None:
    # 100x80 image: a white central box of 50 % of the short side (40x40), black elsewhere.
    image = torch.zeros(3, 80, 100, dtype=torch.uint8)
    image[:, 20:60, 30:70] = 255
    out = build_eval_transform(16, crop_pct=0.5, mean=(0, 0, 0), std=(1, 1, 1))(image)
    assert out.shape == (3, 16, 16)
    # resize short side 80 -> 32, centre crop 16 = the central 50 % = exactly the white box.
    assert torch.allclose(out[:, 2:-2, 2:-2], torch.ones(3, 12, 12), atol=0.02)
    wide = build_eval_transform(16, crop_pct=1.0, mean=(0, 0, 0), std=(1, 1, 1))(image)
    assert float(wide[:, 0, 0].max()) < 0.05  # with crop_pct 1 the corner is black background


def test_crop_pct_and_randaugment_magnitude_follow_the_model(image_tree: Path) -> None:
    # RS-50: magnitude 10; RS-101 (default variant i192): 15; an explicit AUG.RA_MAGNITUDE wins.
    assert _rs_randaugment(build_image_dataset(_cfg(image_tree, "resnetrs50"), "train")).magnitude == 10
    assert _rs_randaugment(build_image_dataset(_cfg(image_tree, "resnetrs101"), "train")).magnitude == 15
    cfg = _cfg(image_tree, "resnetrs101")
    cfg.AUG.RA_MAGNITUDE = 7
    assert _rs_randaugment(build_image_dataset(cfg, "train")).magnitude == 7
    cfg.AUG.RAND_AUGMENT = False
    assert not any(isinstance(t, RandAugmentTF) for t in build_image_dataset(cfg, "train").transform.transforms)
    resize = build_image_dataset(_cfg(image_tree), "val").transform.transforms[0]
    assert resize.size == [int(SIZE / 0.875)]  # model default crop_pct 0.875
    resize = build_image_dataset(_cfg(image_tree, CROP_PCT=1.0), "val").transform.transforms[0]
    assert resize.size == [SIZE]


def test_train_transform_settings(image_tree: Path) -> None:
    dataset = build_image_dataset(_cfg(image_tree, INCEPTION_AREA=[0.25, 1.0], INCEPTION_ASPECT=[0.75, 1.3333]), "train")
    crop = dataset.transform.transforms[0]
    assert crop.scale == (0.25, 1.0) and crop.ratio == (0.75, 1.3333)
    assert crop.interpolation.value == "bicubic"
    # No flip when disabled.
    transform = build_train_transform(8, flip=False, randaugment_magnitude=None, area=(1.0, 1.0), aspect=(1.0, 1.0),
                                      mean=(0, 0, 0), std=(1, 1, 1))
    ramp = torch.arange(8, dtype=torch.uint8).mul(30).expand(3, 8, 8).contiguous()
    for _ in range(10):  # with a flip, 10 draws would all match with probability 2**-10
        assert torch.allclose(transform(ramp), ramp.float() / 255)


def test_randaugment_levels_extend_past_10() -> None:
    space = RandAugmentTF._AUGMENTATION_SPACE
    ra = RandAugmentTF(2, 15)
    assert ra.num_magnitude_bins == 16
    assert float(space["Rotate"][0](16, 32, 32)[15]) == pytest.approx(45.0)
    assert float(space["ShearX"][0](16, 32, 32)[15]) == pytest.approx(0.45)
    assert float(space["Rotate"][0](11, 32, 32)[10]) == pytest.approx(30.0)  # level 10 = torchvision's max
    assert float(space["Brightness"][0](16, 32, 32)[15]) < 1.0  # factor 1 - m stays positive
    assert int(space["Posterize"][0](16, 32, 32)[15]) >= 1
    out = ra(torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8))
    assert out.shape == (3, 32, 32) and out.dtype == torch.uint8
    with pytest.raises(ValueError, match="magnitude"):
        RandAugmentTF(2, -1)


def test_bad_layouts_fail_clearly(image_tree: Path) -> None:
    (image_tree / "val" / "dog").mkdir()
    with pytest.raises(ValueError, match="not in the class list.*dog"):
        build_image_dataset(_cfg(image_tree), "val")
    cfg = _cfg(image_tree)
    cfg.MODEL.NUM_CLASSES = 2
    with pytest.raises(ValueError, match="MODEL.NUM_CLASSES"):
        build_image_dataset(cfg, "train")
    (image_tree / "empty" / "x").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no images"):
        ImageFolderDataset(image_tree / "empty", build_eval_transform(SIZE))
    with pytest.raises(FileNotFoundError, match="split 'train'"):
        build_image_dataset(_cfg(image_tree / "nowhere"), "train")
