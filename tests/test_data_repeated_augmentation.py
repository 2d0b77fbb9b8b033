"""Repeated augmentation (AUG.NUM_SAMPLE): K clips per video from one open and one decode, each with its own
window, crop and flip drawn in the sample's RNG scope; broken files replaced as a whole; the collate."""

from __future__ import annotations

import pytest
import torch

from rs_image.data.randomness import EpochIndex, sample_rng
from rs_video.data import build_video_dataset, collate_clips
from tests.test_data_dataset import CountingDecoder, expected_substitution
from tests.videos import list_dataset, data_cfg


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """4 good 40-frame videos, then a truncated and a garbage file, per split."""
    return list_dataset(tmp_path_factory.mktemp("ra"), splits=("train", "val"), num_videos=4, num_frames=40,
                        broken=("truncated", "garbage"))


def ra_set(root, k, **overrides):
    cfg = data_cfg(root, AUG__NUM_SAMPLE=k, DATA__MAX_FAILURE_FRACTION=1.0, AUG__RAND_AUGMENT=True,
                   AUG__RA_MAGNITUDE=9, **overrides)
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
    """The item's clips the long way: in the sample's RNG scope, the K windows first, then each clip decoded
    on its own from its window and transformed, in order (the documented order of the draws)."""
    with sample_rng(dataset.policy.seed, epoch, index, attempt):
        with dataset.decoder.open(dataset.path(video_index)) as video:
            windows = [dataset.sampler.sample("train", video.num_frames, video.fps) for _ in range(dataset.num_samples)]
            frames = [video.get_frames(window) for window in windows]
        return windows, [dataset.transform(clip) for clip in frames]


@pytest.mark.parametrize("output_dtype", ["float32", "uint8"])
def test_k_clips_come_from_one_open_and_one_decode_request_and_each_has_its_own_draws(root, output_dtype):
    train = ra_set(root, 3, DATA__OUTPUT_DTYPE=output_dtype)
    recording = RecordingDecoder(train.decoder, [train.path(v) for v in range(train.num_videos)])
    train.decoder = recording
    for index in range(4):
        item = train[EpochIndex(index, 2)]
        assert item["video"].shape == (3, 3, 4, 32, 32) and item["video"].dtype == getattr(torch, output_dtype)
        assert item["label"].tolist() == [index % 2] * 3 and item["video_index"].tolist() == [index] * 3
        assert item["view_index"].tolist() == [0, 1, 2] and item["failed_reads"].tolist() == [0, 0, 0]
        assert recording.opens[0, index] == 1 and len(recording.requests) == 1  # one open, one request
        train.decoder = recording.decoder
        windows, clips = replay(train, index, index, epoch=2)
        train.decoder = recording
        assert recording.requests.pop() == (train.path(index), sorted({i for w in windows for i in w}))
        for k in range(3):
            assert torch.equal(item["video"][k], clips[k]), k
        assert len({tuple(w) for w in windows}) > 1  # each clip its own window
        assert not torch.equal(item["video"][0], item["video"][1]) and not torch.equal(item["video"][1], item["video"][2])


def test_one_clip_per_video_is_the_plain_item(root):
    train = ra_set(root, 1)
    item = train[EpochIndex(2, 5)]
    assert item["video"].shape == (3, 4, 32, 32) and (item["label"], item["video_index"], item["view_index"]) == (0, 2, 0)
    _, clips = replay(train, 2, 2, epoch=5)
    assert torch.equal(item["video"], clips[0])


def test_items_depend_on_seed_epoch_and_index_only_and_batches_on_no_worker(root):
    used = ra_set(root, 2)
    for index in range(len(used)):
        used[index]  # learns the broken files
    batches = []
    for workers in (0, 2):
        fresh = ra_set(root, 2)
        sampler = [EpochIndex(i, 1) for i in (5, 0, 3, 4, 1, 2)]
        loader = torch.utils.data.DataLoader(fresh, batch_size=3, sampler=sampler, num_workers=workers,
                                             collate_fn=collate_clips)
        batches.append(list(loader))
    for a, b in zip(*batches):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    flat = torch.cat([b["video"] for b in batches[0]])
    assert flat.shape == (12, 3, 4, 32, 32)
    for row, index in enumerate(i for i in (5, 0, 3, 4, 1, 2) for _ in range(2)):
        assert torch.equal(flat[row], used[EpochIndex(index, 1)]["video"][row % 2])
    assert not torch.equal(used[EpochIndex(1, 1)]["video"], used[EpochIndex(1, 2)]["video"])  # a new epoch


def test_a_broken_file_is_replaced_with_all_its_clips(root):
    train = ra_set(root, 3)
    for index in (4, 5):  # the truncated and the garbage file
        item = train[EpochIndex(index, 0)]
        substitute, attempt = expected_substitution(train, index, 0, set(range(4)))
        assert attempt >= 1 and item["video_index"].tolist() == [substitute] * 3
        assert item["label"].tolist() == [substitute % 2] * 3
        assert item["failed_reads"].tolist() == [attempt, 0, 0]  # summed over rows: the replaced loads, once
        _, clips = replay(train, substitute, index, epoch=0, attempt=attempt)
        assert all(torch.equal(item["video"][k], clips[k]) for k in range(3))
    assert train.failure_report().num_failed == 2


@pytest.mark.parametrize("output_dtype", ["float32", "uint8"])
def test_collate_makes_b_items_of_k_clips_a_batch_of_b_times_k(root, output_dtype):
    train = ra_set(root, 3, DATA__OUTPUT_DTYPE=output_dtype)
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
    from rs_video.data import KineticsDataset, VideoRecord

    train = ra_set(root, 2)
    records = [VideoRecord(train.path(i), train.label(i)) for i in range(train.num_videos)]
    with pytest.raises(ValueError, match="1 outside train mode; got 2 in val mode"):
        KineticsDataset(records, "val", train.sampler, train.transform, train.decoder, num_samples=2)
    assert build_video_dataset(data_cfg(root, AUG__NUM_SAMPLE=2), "val").num_samples == 1  # the builder's choice
