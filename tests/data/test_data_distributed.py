"""Multi-view test of the video data through the engine's MultiViewAggregator across 2 gloo processes: with
the engine's sharded sampler every (video, view) is counted once; a padding DistributedSampler is refused."""

from __future__ import annotations

import json

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rs_image.engine.evaluator import MultiViewAggregator
from rs_image.engine.samplers import ShardedEvalSampler
from rs_video.data import build_video_dataset
from tests.distributed import free_port
from tests.videos import data_cfg, list_dataset


def fake_scores(video_index: torch.Tensor, view_index: torch.Tensor, num_classes: int) -> torch.Tensor:
    """A deterministic score per (video, view): distinguishable sums reveal double counting."""
    scores = torch.zeros(len(video_index), num_classes)
    scores[torch.arange(len(video_index)), video_index % num_classes] = 1.0 + view_index.float()
    return scores


def _aggregate(dataset, sampler) -> MultiViewAggregator:
    agg = MultiViewAggregator(dataset.num_videos, 4, "sum")
    for batch in torch.utils.data.DataLoader(dataset, batch_size=2, sampler=sampler, num_workers=0):
        scores = fake_scores(batch["video_index"], batch["view_index"], 4)
        agg.update(scores, batch["label"], batch["video_index"], batch["view_index"], batch["failed"])
    agg.synchronize()
    return agg


def _rank_main(rank: int, world: int, port: int, root: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        cfg = data_cfg(root, TEST__NUM_ENSEMBLE_VIEWS=3, TEST__NUM_SPATIAL_CROPS=1)
        dataset = build_video_dataset(cfg, "test")  # 3 videos x 3 views = 9 items on 2 ranks
        sharded = ShardedEvalSampler(len(dataset), rank, world)
        agg = _aggregate(dataset, sharded)
        agg.check_complete(dataset.num_views)
        refused = ""
        try:  # pads 9 items to 10: one view scored twice, which the sums could no longer undo
            _aggregate(dataset, torch.utils.data.DistributedSampler(dataset, shuffle=True, seed=0))
        except RuntimeError as error:
            refused = str(error)
        if rank == 0:
            summary = agg.summarize(views_per_sample=dataset.num_views)
            with open(out, "w") as handle:
                json.dump({"num_views": agg.view_counts.tolist(), "scores": agg.scores.tolist(),
                           "labels": agg.labels.tolist(), "shard": len(sharded), "refused": refused,
                           "evaluated": summary.num_evaluated, "view_hits": agg.view_hits.tolist(),
                           "clip_top1": summary.clip_top1}, handle)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_count_every_view_once(tmp_path):
    root = list_dataset(tmp_path / "data", splits=("test",), num_videos=3, num_frames=16)
    out = tmp_path / "result.json"
    mp.spawn(_rank_main, args=(2, free_port(), str(root), str(out)), nprocs=2, join=True)
    result = json.loads(out.read_text())
    assert result["shard"] == 5  # rank 0 takes items 0..4, rank 1 items 5..8: no padding
    assert result["num_views"] == [3, 3, 3] and result["evaluated"] == 3
    assert result["labels"] == [0, 1, 0]
    # Each video's class gets 1 + 2 + 3 = 6 exactly once.
    for video, scores in enumerate(result["scores"]):
        assert scores[video % 4] == 6.0 and sum(scores) == 6.0
    # Per-view hits are reduced the same way: videos 0 and 1 score their label in all 3 views, video 2 (label 0,
    # class 2 scored) in none at top-1 and all at top-4.
    assert result["view_hits"] == [[3, 3], [3, 3], [0, 3]] and result["clip_top1"] == 100.0 * 6 / 9
    # A padding sampler's duplicate is detected on every rank instead of silently summed.
    assert "1 (sample, view) pairs were scored on more than one process" in result["refused"]
