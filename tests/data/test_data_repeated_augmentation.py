"""Several clips per training video (SlowFast's DATA.TRAIN_CROP_NUM_TEMPORAL windows x AUG.NUM_SAMPLE
augmentations): one open and one decode per video, each clip with its own draws in the sample's RNG scope,
broken files replaced as a whole, and the collate that makes B items of K clips a batch of B x K."""

from __future__ import annotations

import pytest
import torch

from rs_image.data.randomness import EpochIndex, sample_rng
from rs_video.data import VideoDataset, VideoRecord, build_video_dataset, collate_clips
from tests.videos import CountingDecoder, data_cfg, expected_substitution, list_dataset


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """4 good 40-frame videos, then a truncated and a garbage file, per split."""
    return list_dataset(tmp_path_factory.mktemp("ra"), splits=("train", "val"), num_videos=4, num_frames=40,
                        broken=("truncated", "garbage"))


def train_set(root, windows=1, augmentations=1, **overrides):
    cfg = data_cfg(root, DATA__TRAIN_CROP_NUM_TEMPORAL=windows, AUG__NUM_SAMPLE=augmentations,
                   DATA__MAX_FAILURE_FRACTION=1.0, AUG__RAND_AUGMENT=True, AUG__RA_MAGNITUDE=9, **overrides)
    return build_video_dataset(cfg, "train")


class RecordingDecoder(CountingDecoder):
    """Also records every frame request of every open file."""

    def __init__(self, decoder, paths) -> None:
        super().__init__(decoder, paths)
        self.requests = []

    def open(self, path):
        video = super().open(path)
        get_frames, requests = video.get_frames, self.requests

        def recording(indices):
            requests.append((path, list(indices)))
            return get_frames(indices)

        video.get_frames = recording
        return video


def replay(dataset, video_index, index, epoch, attempt=0):
    """The item's clips the long way, in the documented order of the draws: in the sample's RNG scope the W
    windows first, then for each window its S clips, each decoded on its own and transformed."""
    with sample_rng(dataset.policy.seed, epoch, index, attempt):
        with dataset.decoder.open(dataset.path(video_index)) as video:
            windows = [dataset.sampler.sample("train", video.num_frames, video.fps) for _ in range(dataset.num_windows)]
            frames = [video.get_frames(window) for window in windows]
        return windows, [dataset.transform(f) for f in frames for _ in range(dataset.num_augmentations)]


@pytest.mark.parametrize("windows, augmentations", [(3, 1), (1, 3), (2, 2)])
@pytest.mark.parametrize("output_dtype", ["float32", "uint8"])
def test_k_clips_come_from_one_open_and_one_decode_request_and_each_has_its_own_draws(
        root, windows, augmentations, output_dtype):
    train = train_set(root, windows, augmentations, DATA__OUTPUT_DTYPE=output_dtype)
    assert train.clips_per_item == windows * augmentations
    recording = RecordingDecoder(train.decoder, [train.path(v) for v in range(train.num_videos)])
    train.decoder = recording
    k = windows * augmentations
    for index in range(4):
        item = train[EpochIndex(index, 2)]
        assert item["video"].shape == (k, 3, 4, 32, 32) and item["video"].dtype == getattr(torch, output_dtype)
        assert item["label"].tolist() == [index % 2] * k and item["video_index"].tolist() == [index] * k
        assert item["view_index"].tolist() == list(range(k)) and item["failed_reads"].tolist() == [0] * k
        assert recording.opens[0, index] == 1 and len(recording.requests) == 1  # one open, one request
        train.decoder = recording.decoder
        drawn, clips = replay(train, index, index, epoch=2)
        train.decoder = recording
        assert recording.requests.pop() == (train.path(index), sorted({i for w in drawn for i in w}))
        for row in range(k):
            assert torch.equal(item["video"][row], clips[row]), row
        assert len({tuple(w) for w in drawn}) == windows  # each temporal clip its own window
        assert all(not torch.equal(item["video"][a], item["video"][a + 1]) for a in range(k - 1))


def test_one_clip_per_video_is_the_plain_item(root):
    train = train_set(root)
    item = train[EpochIndex(2, 5)]
    assert item["video"].shape == (3, 4, 32, 32)
    assert (item["label"], item["video_index"], item["view_index"]) == (0, 2, 0)
    _, clips = replay(train, 2, 2, epoch=5)
    assert torch.equal(item["video"], clips[0])


def test_items_depend_on_seed_epoch_and_index_only_and_batches_on_no_worker(root):
    used = train_set(root, 2, 1)
    for index in range(len(used)):
        used[index]  # learns the broken files
    order = (5, 0, 3, 4, 1, 2)
    batches = []
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(train_set(root, 2, 1), batch_size=3, num_workers=workers,
                                             sampler=[EpochIndex(i, 1) for i in order], collate_fn=collate_clips)
        batches.append(list(loader))
    for a, b in zip(*batches):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    flat = torch.cat([b["video"] for b in batches[0]])
    assert flat.shape == (12, 3, 4, 32, 32)
    for row, index in enumerate(i for i in order for _ in range(2)):
        assert torch.equal(flat[row], used[EpochIndex(index, 1)]["video"][row % 2])
    assert not torch.equal(used[EpochIndex(1, 1)]["video"], used[EpochIndex(1, 2)]["video"])  # a new epoch


def test_a_broken_file_is_replaced_with_all_its_clips(root):
    train = train_set(root, 2, 2)
    for index in (4, 5):  # the truncated and the garbage file
        item = train[EpochIndex(index, 0)]
        substitute, attempt = expected_substitution(train, index, 0, set(range(4)))
        assert attempt >= 1 and item["video_index"].tolist() == [substitute] * 4
        assert item["label"].tolist() == [substitute % 2] * 4
        assert item["failed_reads"].tolist() == [attempt, 0, 0, 0]  # summed over rows: the replaced loads, once
        _, clips = replay(train, substitute, index, epoch=0, attempt=attempt)
        assert all(torch.equal(item["video"][row], clips[row]) for row in range(4))
    assert train.failure_report().num_failed == 2


@pytest.mark.parametrize("output_dtype", ["float32", "uint8"])
def test_collate_makes_b_items_of_k_clips_a_batch_of_b_times_k(root, output_dtype):
    train = train_set(root, 1, 3, DATA__OUTPUT_DTYPE=output_dtype)
    items = [train[i] for i in (2, 5)]
    batch = collate_clips(items)
    assert batch["video"].shape == (6, 3, 4, 32, 32)
    layout = torch.channels_last_3d if output_dtype == "uint8" else torch.contiguous_format
    assert batch["video"].is_contiguous(memory_format=layout)
    for row in range(6):
        assert torch.equal(batch["video"][row], items[row // 3]["video"][row % 3])
    assert batch["view_index"].tolist() == [0, 1, 2, 0, 1, 2]
    assert batch["video_index"].tolist() == [2] * 3 + [items[1]["video_index"][0].item()] * 3
    assert int(batch["failed_reads"].sum()) == sum(int(it["failed_reads"].sum()) for it in items) >= 1


def test_more_clips_than_one_only_in_train_mode(root):
    train = train_set(root, 2, 2)
    records = [VideoRecord(train.path(i), train.label(i)) for i in range(train.num_videos)]
    for keyword, key in (("num_windows", "DATA.TRAIN_CROP_NUM_TEMPORAL"), ("num_augmentations", "AUG.NUM_SAMPLE")):
        with pytest.raises(ValueError, match=f"{key} must be >= 1, and 1 outside train mode; got 2 in val mode"):
            VideoDataset(records, "val", train.sampler, train.transform, train.decoder, **{keyword: 2})
    val = build_video_dataset(data_cfg(root, DATA__TRAIN_CROP_NUM_TEMPORAL=2, AUG__NUM_SAMPLE=2), "val")
    assert val.clips_per_item == 1  # the builder's choice
