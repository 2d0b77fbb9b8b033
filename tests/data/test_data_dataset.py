"""VideoDataset: lengths, items, test views, broken input, worker-safe failure counts, short videos."""

from __future__ import annotations

import logging
import pickle

import pytest
import torch

from rs_image.data.randomness import EpochIndex
from rs_video.data import VideoDataset, build_video_dataset
from rs_video.benchmark.synthetic import read_frame_index
from tests.videos import (BROKEN_KINDS, CountingDecoder, data_cfg, expected_substitution, list_dataset, write_broken,
                          write_list, write_video)

PRESENT_BROKEN = [k for k in BROKEN_KINDS if k != "missing"]  # 4 broken files that exist, 1 missing


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """4 good 24-frame videos per split, then the 5 broken kinds (one of them missing)."""
    return list_dataset(tmp_path_factory.mktemp("kinetics"), num_videos=4, broken=BROKEN_KINDS)


@pytest.fixture(scope="module")
def good_root(tmp_path_factory):
    return list_dataset(tmp_path_factory.mktemp("kinetics_good"), num_videos=3)


def cfg_for(root, **overrides):
    overrides.setdefault("DATA__MAX_FAILURE_FRACTION", 1.0)
    return data_cfg(root, **overrides)


def test_lengths_items_and_test_view_layout(good_root):
    cfg = cfg_for(good_root)
    train, val, test = (build_video_dataset(cfg, s) for s in ("train", "val", "test"))
    assert len(train) == len(val) == 3 and test.num_videos == 3 and test.num_views == 6 and len(test) == 18
    item = train[1]
    assert set(item) == {"video", "label", "video_index", "view_index", "failed_reads", "fallback_reads"}
    assert item["failed_reads"] == 0 and item["fallback_reads"] == 0
    assert item["video"].shape == (3, 4, 32, 32) and item["video"].dtype == torch.float32
    assert (item["label"], item["video_index"], item["view_index"]) == (1, 1, 0)
    assert val[2]["video"].shape == (3, 4, 40, 40)
    assert torch.equal(val[2]["video"], val[2]["video"])  # val is deterministic
    items = [test[i] for i in range(len(test))]
    assert [(it["video_index"], it["view_index"]) for it in items] == [(v, w) for v in range(3) for w in range(6)]
    assert all(it["failed"] is False and it["video"].shape == (3, 4, 40, 40) for it in items)
    # Views 0-2: first temporal window, left/centre/right; 3-5: the last window.
    assert not torch.equal(items[0]["video"], items[2]["video"])
    assert not torch.equal(items[1]["video"], items[4]["video"])


def uncached_view(test, index):
    """A test item the direct way: decode its own window, prepare, crop, finalize."""
    video, view = divmod(index, test.num_views)
    temporal, crop = divmod(view, test.num_spatial_crops)
    return test.transform.finalize(test.transform.prepare(test._decode(video, temporal)), crop)


@pytest.mark.parametrize("decoder", ["torchcodec", "pyav", "decord"])
def test_test_views_come_from_one_open_per_video_and_equal_the_uncached_path(good_root, decoder):
    test = build_video_dataset(cfg_for(good_root, DATA__DECODER=decoder, TEST__NUM_ENSEMBLE_VIEWS=3), "test")
    counting = CountingDecoder(test.decoder, [test.path(v) for v in range(test.num_videos)])
    test.decoder = counting
    items = [test[index]["video"] for index in range(len(test))]
    assert counting.opens.tolist() == [[1, 1, 1]]  # 9 views per video, one open each
    test.decoder = counting.decoder
    for index, video in enumerate(items):
        assert torch.equal(video, uncached_view(test, index)), index


def test_test_views_are_decoded_once_per_video_per_loader_worker(good_root):
    test = build_video_dataset(cfg_for(good_root), "test")  # 3 videos x 6 views
    counting = CountingDecoder(test.decoder, [test.path(v) for v in range(test.num_videos)], workers=2)
    test.decoder = counting
    loader = torch.utils.data.DataLoader(test, batch_size=4, num_workers=2)  # in order, batches alternate workers
    batches = list(loader)
    expected = torch.zeros(2, 3, dtype=torch.int64)
    for number, batch in enumerate(batches):
        expected[number % 2, batch["video_index"]] = 1  # a video split over both workers: once in each
    assert counting.opens.tolist() == expected.tolist() and int(expected.sum()) == 6
    test.decoder = counting.decoder
    videos = torch.cat([batch["video"] for batch in batches])
    assert all(torch.equal(videos[i], uncached_view(test, i)) for i in range(len(test)))


def test_test_windows_are_the_sampled_frames(good_root):
    test = build_video_dataset(cfg_for(good_root), "test")
    first = [read_frame_index(f) for f in test._decode(0, 0)]
    last = [read_frame_index(f) for f in test._decode(0, 1)]
    assert first == [0, 2, 4, 6] and last == [17, 19, 21, 23]  # 24 frames, windows at the start and the end


def test_every_decoder_gives_identical_items(good_root):
    reference = None
    for decoder in ("torchcodec", "pyav", "decord"):
        test = build_video_dataset(cfg_for(good_root, DATA__DECODER=decoder), "test")
        assert test.decoder.name == decoder
        videos = torch.stack([test[i]["video"] for i in range(0, len(test), 5)])
        if reference is None:
            reference = videos
        assert torch.equal(videos, reference), decoder


def test_train_replaces_broken_videos_warns_once_per_file_and_counts_per_epoch(root, caplog):
    train = build_video_dataset(cfg_for(root), "train")
    assert train.num_videos == 8 and train.missing and train.missing[0].endswith("train_broken_missing.mp4")
    good = set(range(4))
    with caplog.at_level(logging.WARNING, logger="rs_image.data.failures"):
        for epoch in range(2):
            items = [train[EpochIndex(i, epoch)] for i in range(len(train))]
            expected = [expected_substitution(train, i, epoch, good) for i in range(len(train))]
            assert [(it["video_index"], it["failed_reads"]) for it in items] == expected
            assert [n for _, n in expected[:4]] == [0] * 4 and all(n >= 1 for _, n in expected[4:])
            assert all(it["label"] == it["video_index"] % 2 for it in items)
            report = train.failure_report()
            assert (report.num_failed, report.num_missing, report.num_samples) == (4, 1, 8)
    warned = [r.getMessage() for r in caplog.records]
    for kind in PRESENT_BROKEN:
        assert sum(f"train_broken_{kind}.mp4" in m for m in warned) == 1, kind
    reasons = train.failures
    assert reasons[str(root / "videos/train_broken_empty.mp4")] == "empty file"
    assert reasons[str(root / "videos/train_broken_audio_only.mp4")] == "no video stream"
    assert reasons[str(root / "videos/train_broken_missing.mp4")] == "missing"
    assert train.num_failed == 5
    assert str(train.failure_report()).startswith("4 of 8 samples failed, 1 missing")


def test_a_substituted_sample_is_the_same_whoever_loads_it(root):
    """The substitute and the clip depend on (seed, epoch, index): a fresh data set (another worker that
    knows no failures yet) returns the very same item as one that knows them all."""
    seasoned = build_video_dataset(cfg_for(root), "train")
    for i in range(len(seasoned)):
        seasoned[i]  # learns every broken file
    for index in (1, 5, 7):
        fresh = build_video_dataset(cfg_for(root), "train")
        a, b = fresh[EpochIndex(index, 3)], seasoned[EpochIndex(index, 3)]
        assert (a["video_index"], a["failed_reads"]) == (b["video_index"], b["failed_reads"])
        assert torch.equal(a["video"], b["video"])
    other_epoch = seasoned[EpochIndex(1, 4)]["video"]
    assert not torch.equal(other_epoch, seasoned[EpochIndex(1, 3)]["video"])  # a new epoch, a new crop


def test_val_substitutes_too(root):
    val = build_video_dataset(cfg_for(root), "val")
    items = [val[i] for i in range(len(val))]
    expected = [expected_substitution(val, i, 0, set(range(4))) for i in range(len(val))]
    assert [(it["video_index"], it["failed_reads"]) for it in items] == expected
    assert val.num_failed == 5


@pytest.mark.slow
@pytest.mark.parametrize("context, workers", [("fork", 2), ("spawn", 1)])
def test_failure_counts_from_dataloader_workers_reach_the_main_process(root, context, workers):
    train = build_video_dataset(cfg_for(root), "train")
    loader = torch.utils.data.DataLoader(
        train, batch_size=3, shuffle=True, num_workers=workers, persistent_workers=True,
        multiprocessing_context=context,
    )
    expected = sum(expected_substitution(train, i, 0, set(range(4)))[1] for i in range(len(train)))
    for epoch in range(2 if context == "fork" else 1):
        batches = list(loader)
        assert sum(b["video"].shape[0] for b in batches) == len(train)
        assert set(torch.cat([b["video_index"] for b in batches]).tolist()) <= set(range(4))
        assert sum(int(b["failed_reads"].sum()) for b in batches) == expected  # exact, whichever worker
        report = train.failure_report()
        assert (report.num_failed, report.num_missing) == (4, 1)


def test_test_mode_marks_failures_and_never_substitutes(root, caplog):
    test = build_video_dataset(cfg_for(root), "test")
    counting = CountingDecoder(test.decoder, [test.path(v) for v in range(test.num_videos)])
    test.decoder = counting
    assert len(test) == 8 * 6
    items = [test[i] for i in range(len(test))]
    for item in items:
        broken = item["video_index"] >= 4
        assert item["failed"] is broken
        if broken:
            assert torch.count_nonzero(item["video"]) == 0 and item["video"].shape == (3, 4, 40, 40)
    assert [it["video_index"] for it in items] == [i // 6 for i in range(48)]
    assert test.num_failed == 5 and len(test.failures) == 5
    assert counting.opens.tolist() == [[1] * 8]  # a failed video is tried once, not once per view


def test_test_mode_stops_above_the_failure_fraction(root):
    test = build_video_dataset(cfg_for(root, DATA__MAX_FAILURE_FRACTION=0.3), "test")  # 1 of 9 missing: ok
    with pytest.raises(RuntimeError, match="MAX_FAILURE_FRACTION=0.3") as info:
        for index in range(len(test)):
            test[index]
    assert "3 of 9 test videos failed or are missing" in str(info.value)
    with pytest.raises(RuntimeError, match="1 of 9 test videos failed or are missing"):
        build_video_dataset(cfg_for(root, DATA__MAX_FAILURE_FRACTION=0.05), "test")


@pytest.fixture
def all_broken(tmp_path):
    rows = []
    for kind in ("empty", "garbage", "audio_only"):
        write_broken(tmp_path / f"{kind}.mp4", kind)
        rows.append((f"{kind}.mp4", 0))
    for split in ("train", "test"):
        write_list(tmp_path / f"{split}.csv", rows)
    return tmp_path


def test_all_failing_train_set_raises_at_the_first_batch(all_broken):
    train = build_video_dataset(cfg_for(all_broken), "train")
    loader = torch.utils.data.DataLoader(train, batch_size=2, num_workers=2, timeout=60)
    batches = iter(loader)
    with pytest.raises(RuntimeError, match="all 3 videos failed to load"):
        next(batches)
    # The raised error's frames keep the iterator alive; a garbage collection in some later test would then
    # wait for its idle worker (10 s). End the workers here.
    batches._shutdown_workers()


def test_all_failing_test_set_raises(all_broken):
    test = build_video_dataset(cfg_for(all_broken, DATA__MAX_FAILURE_FRACTION=0.5), "test")
    with pytest.raises(RuntimeError, match="test videos failed"):
        for index in range(len(test)):
            test[index]


def test_retries_are_bounded(root):
    train = build_video_dataset(cfg_for(root, DATA__NUM_RETRIES=0), "train")
    with pytest.raises(RuntimeError, match=r"could not load video 5 or any of 0 substitutes \(DATA.NUM_RETRIES=0\)"):
        train[5]  # a broken file, and no retry allowed


@pytest.mark.slow
@pytest.mark.parametrize("policy, expected", [("repeat_last", [0, 2, 4, 4]), ("loop", [0, 2, 4, 1])])
def test_short_video_is_padded_not_a_failure(tmp_path, policy, expected):
    write_video(tmp_path / "short.mp4", num_frames=5)
    write_list(tmp_path / "train.csv", [("short.mp4", 1)])
    train = build_video_dataset(cfg_for(tmp_path, DATA__SHORT_CLIP_POLICY=policy), "train")
    assert [read_frame_index(f) for f in train._decode(0, 0)] == expected
    item = train[0]
    assert item["video"].shape == (3, 4, 32, 32) and item["failed_reads"] == 0
    assert train.num_failed == 0


@pytest.mark.parametrize("policy", ["repeat_last", "loop"])
def test_test_views_of_a_short_video_with_repeated_frames_equal_the_uncached_path(tmp_path, policy):
    write_video(tmp_path / "short.mp4", num_frames=5)
    write_list(tmp_path / "test.csv", [("short.mp4", 1)])
    test = build_video_dataset(cfg_for(tmp_path, DATA__SHORT_CLIP_POLICY=policy), "test")
    assert [[read_frame_index(f) for f in test._decode(0, t)] for t in range(2)] == (
        [[0, 2, 4, 4]] * 2 if policy == "repeat_last" else [[0, 2, 4, 1]] * 2
    )
    for index in range(len(test)):
        assert torch.equal(test[index]["video"], uncached_view(test, index)), index


def test_pickles_for_workers_without_its_cache(good_root):
    test = build_video_dataset(cfg_for(good_root), "test")
    first = test[0]
    assert test._views is not None
    copy = pickle.loads(pickle.dumps(test))
    assert copy._views is None and len(copy) == len(test)
    assert torch.equal(copy[0]["video"], first["video"])


def test_builder_rejects_bad_split_and_backend(good_root):
    with pytest.raises(ValueError, match="split"):
        build_video_dataset(cfg_for(good_root), "validation")
    with pytest.raises(ValueError, match="DATA.BACKEND"):
        build_video_dataset(cfg_for(good_root, DATA__BACKEND="dali"), "train")
    # Our loader never stands in for the comparison backend: the video task builds that one.
    with pytest.raises(ValueError, match="'pytorchvideo' is rs_video.data.build_pytorchvideo_dataset"):
        build_video_dataset(cfg_for(good_root, DATA__BACKEND="pytorchvideo"), "train")
    assert isinstance(build_video_dataset(cfg_for(good_root), "train"), VideoDataset)
