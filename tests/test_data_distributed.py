"""Multi-view test aggregation counts every (video, view) once, also across 2 gloo processes with padding."""

from __future__ import annotations

import json
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rs_video.data import MultiViewAccumulator, build_video_dataset
from tests.videos import data_cfg, list_dataset


def fake_scores(video_index: torch.Tensor, view_index: torch.Tensor, num_classes: int) -> torch.Tensor:
    """A deterministic score per (video, view): distinguishable sums reveal double counting."""
    scores = torch.zeros(len(video_index), num_classes)
    scores[torch.arange(len(video_index)), video_index % num_classes] = 1.0 + view_index.float()
    return scores


def test_duplicates_are_counted_once_and_failed_views_excluded():
    acc = MultiViewAccumulator(num_videos=3, num_views=2, num_classes=4)
    videos, views = torch.tensor([0, 0, 1, 1, 2, 2, 0]), torch.tensor([0, 1, 0, 1, 0, 1, 0])  # (0, 0) twice
    failed = torch.tensor([False, False, False, False, True, True, False])
    acc.update(fake_scores(videos, views, 4), videos, views, videos % 2, failed)
    result = acc.synchronize()
    assert result.num_views.tolist() == [2, 2, 0] and result.num_failed_views.tolist() == [0, 0, 2]
    assert result.scores[0].tolist() == [3.0, 0, 0, 0]  # 1 + 2, not 1 + 2 + 1
    assert result.valid.tolist() == [True, True, False]
    result.check_complete()
    assert result.accuracy() == 100.0


def test_max_ensemble_and_incomplete_coverage_is_an_error():
    acc = MultiViewAccumulator(num_videos=2, num_views=3, num_classes=2, ensemble="max")
    acc.update(torch.tensor([[0.2, 0.8], [0.9, 0.1], [0.5, 0.5]]), [0, 0, 0], [0, 1, 2], [1, 1, 1])
    acc.update(torch.tensor([[0.3, 0.7]]), [1], [0], [0])
    result = acc.synchronize()
    assert result.scores[0].tolist() == pytest.approx([0.9, 0.8])
    with pytest.raises(RuntimeError, match="video 1: 1"):
        result.check_complete()
    with pytest.raises(ValueError, match="view_index"):
        acc.update(torch.zeros(1, 2), [0], [3], [0])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, root: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        cfg = data_cfg(root, TEST__NUM_ENSEMBLE_VIEWS=3, TEST__NUM_SPATIAL_CROPS=1)
        dataset = build_video_dataset(cfg, "test")  # 3 videos x 3 views = 9 items: padded to 10 on 2 ranks
        sampler = torch.utils.data.DistributedSampler(dataset, shuffle=True, seed=0)
        loader = torch.utils.data.DataLoader(dataset, batch_size=2, sampler=sampler, num_workers=0)
        acc = MultiViewAccumulator(dataset.num_videos, dataset.num_views, num_classes=4)
        seen = 0
        for epoch in range(2):  # set_epoch each epoch, as the engine does; the result must not change
            sampler.set_epoch(epoch)
            acc.reset()
            for batch in loader:
                seen += len(batch["video_index"])
                scores = fake_scores(batch["video_index"], batch["view_index"], 4)
                acc.update(scores, batch["video_index"], batch["view_index"], batch["label"], batch["failed"])
            result = acc.synchronize()
            result.check_complete()
        if rank == 0:
            with open(out, "w") as handle:
                json.dump({"num_views": result.num_views.tolist(), "scores": result.scores.tolist(),
                           "labels": result.labels.tolist(), "seen_per_epoch": seen // 2}, handle)
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_with_distributed_sampler_count_every_view_once(tmp_path):
    root = list_dataset(tmp_path / "data", splits=("test",), num_videos=3, num_frames=16)
    out = tmp_path / "result.json"
    mp.spawn(_rank_main, args=(2, _free_port(), str(root), str(out)), nprocs=2, join=True)
    result = json.loads(out.read_text())
    assert result["seen_per_epoch"] == 5  # per rank: 10 = 9 items + 1 padding duplicate
    assert result["num_views"] == [3, 3, 3]
    assert result["labels"] == [0, 1, 0]
    # Each video's class gets 1 + 2 + 3 = 6 exactly once, whichever view was the padded duplicate.
    for video, scores in enumerate(result["scores"]):
        assert scores[video % 4] == 6.0 and sum(scores) == 6.0
