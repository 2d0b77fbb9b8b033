"""Fine-tuning controls: frozen BN (2D and 3D, after train(), EMA, precise BN, DDP), frozen stages, layer-wise
learning-rate decay (groups against a hand-computed table, the schedule per group, exact resume), bad values."""

from __future__ import annotations

import copy
import math
import os
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

import rs_image
import rs_video
from rs_image.engine import Trainer, load_config
from rs_image.engine.checkpoint import load_checkpoint
from rs_image.engine.config import ConfigError
from rs_image.engine.launch import train_main
from rs_image.recipe import (
    FineTuneError,
    FrozenBatchNorm,
    build_cosine_warmup_scheduler,
    build_sgd,
    freeze_batchnorm,
    freeze_stages,
    param_groups_layer_decay,
)
from tests.distributed import spawn_two_ranks
from tests.images import jpeg_folder
from tests.helpers import TensorImageTask, tiny_opts

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = dict(stage_widths=(8, 16, 32, 64), stage_depths=(1, 1, 1, 1), stem_width=8, dropout=0.0, drop_path_rate=0.0)


def _bn_layers(model: nn.Module):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _state(model: nn.Module):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("dims", [2, 3])
def test_frozen_bn_stays_frozen_and_keeps_names(dims, rand_bn):
    create = rs_image.create_model if dims == 2 else rs_video.create_model
    name = "resnetrs50" if dims == 2 else "rs3d_50"
    model = rand_bn(create(name, num_classes=3, **TINY))
    reference = copy.deepcopy(model)
    keys = list(model.state_dict())
    assert freeze_batchnorm(model) == len(_bn_layers(model)) > 0
    norm_cls = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
    assert all(isinstance(m, (FrozenBatchNorm, norm_cls)) and type(m).__name__ == f"Frozen{norm_cls.__name__}"
               for m in _bn_layers(model))
    model.train()
    assert all(not m.training for m in _bn_layers(model)) and model.stem.conv1.training
    assert all(not p.requires_grad for m in _bn_layers(model) for p in m.parameters())
    # the same names, so checkpoints load both ways
    assert list(model.state_dict()) == keys
    model.load_state_dict(reference.state_dict())
    reference.load_state_dict(model.state_dict())
    # in train mode a frozen model computes what the eval-mode model computes, and changes no buffer
    x = torch.randn((2, 3, 4, 32, 32) if dims == 3 else (2, 3, 32, 32))
    before = _state(model)
    with torch.no_grad():
        assert torch.equal(model(x), reference.eval()(x))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # a deep copy (the EMA's) is frozen too
    clone = copy.deepcopy(model).train()
    assert all(isinstance(m, FrozenBatchNorm) and not m.training for m in _bn_layers(clone))


def test_frozen_stages_and_bad_values():
    model = rs_image.create_model("resnetrs50", num_classes=3, **TINY)
    assert freeze_stages(model, -1) == [] and all(p.requires_grad for p in model.parameters())
    assert freeze_stages(model, 2) == ["stem", "layer1", "layer2"]
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in model.named_parameters() if n.split(".")[0] in ("stem", "layer1", "layer2")}
    assert all(isinstance(m, FrozenBatchNorm) for part in ("stem", "layer1", "layer2")
               for m in _bn_layers(getattr(model, part)))
    assert not any(isinstance(m, FrozenBatchNorm) for m in _bn_layers(model.layer3))
    with pytest.raises(FineTuneError, match=r"MODEL.FROZEN_STAGES 5: the model has only 4 stages"):
        freeze_stages(rs_image.create_model("resnetrs50", num_classes=3, **TINY), 5)
    with pytest.raises(ConfigError, match=r"'SOLVER.LAYER_DECAY' = 0.0: must be in \(0, 1\]"):
        load_config(None, ["SOLVER.LAYER_DECAY", "0"])
    with pytest.raises(ConfigError, match=r"'SOLVER.LAYER_DECAY' = 1.5"):
        load_config(None, ["SOLVER.LAYER_DECAY", "1.5"])


def test_cli_frozen_stages_too_large_exits_2(tmp_path, capsys):
    data = jpeg_folder(tmp_path / "data", {"train": 1})
    with pytest.raises(SystemExit) as info:
        train_main(tiny_opts(tmp_path / "out", "image", "DATA.PATH_TO_DATA_DIR", str(data), "MODEL.FROZEN_STAGES", "7",
                             "TRAIN.EVAL_PERIOD", "0"))
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and len(err.splitlines()) == 1 and "MODEL.FROZEN_STAGES 7" in err, err


def test_layer_decay_groups_equal_a_hand_computed_table():
    model = rs_image.create_model("resnetrs50", num_classes=3, **TINY)
    freeze_stages(model, 0)  # the stem is frozen: its depth has no group
    groups = param_groups_layer_decay(model, weight_decay=1e-4, layer_decay=0.5)
    # 4 blocks (one per stage): depths stem 0, layer1..4 = 1..4, head 5; scale 0.5 ** (5 - depth)
    table = [
        ("depth1_decay", 1e-4, 0.0625), ("depth1_no_decay", 0.0, 0.0625),
        ("depth2_decay", 1e-4, 0.125), ("depth2_no_decay", 0.0, 0.125),
        ("depth3_decay", 1e-4, 0.25), ("depth3_no_decay", 0.0, 0.25),
        ("depth4_decay", 1e-4, 0.5), ("depth4_no_decay", 0.0, 0.5),
        ("depth5_decay", 1e-4, 1.0), ("depth5_no_decay", 0.0, 1.0),
    ]
    assert [(g["name"], g["weight_decay"], g["lr_scale"]) for g in groups] == table
    names = {id(p): n for n, p in model.named_parameters()}
    assert [names[id(p)] for p in groups[-2]["params"]] == ["head.fc.weight"]
    assert [names[id(p)] for p in groups[-1]["params"]] == ["head.fc.bias"]
    assert all(names[id(p)].startswith("layer2.") for g in groups[2:4] for p in g["params"])
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in model.parameters())
    # the optimizer starts each group at peak * scale, and the schedule scales every group alike
    sgd = build_sgd(model, 0.8, weight_decay=1e-4, layer_decay=0.5)
    assert sgd.defaults["lr"] == 0.8 and [g["lr"] for g in sgd.param_groups] == [0.8 * s for _, _, s in table]
    scheduler = build_cosine_warmup_scheduler(sgd, total_steps=4, warmup_steps=0)
    sgd.step()
    scheduler.step()
    cosine = 0.8 * 0.5 * (1 + math.cos(math.pi / 4))
    assert [g["lr"] for g in sgd.param_groups] == pytest.approx([cosine * s for _, _, s in table], rel=1e-12)


def _frozen_part(model: nn.Module, all_bn: bool = True):
    """Parameters and buffers of the stem and layer1, and with ``all_bn`` every BN buffer."""
    out = {}
    for key, value in model.state_dict().items():
        if key.split(".")[0] in ("stem", "layer1") or (all_bn and ("running_" in key or "num_batches" in key)):
            out[key] = value.detach().clone()
    return out


def _finetune_opts(out: Path, *extra: str):
    # MODEL.FROZEN_BN: SlowFast's name for BN.FREEZE (tests/engine/test_multilabel.py uses BN.FREEZE)
    return tiny_opts(out, "image", "MODEL.FROZEN_STAGES", "1", "MODEL.FROZEN_BN", "True", "BN.USE_PRECISE_STATS", "True",
                     "BN.NUM_BATCHES_PRECISE", "2", "SOLVER.LAYER_DECAY", "0.7", "TRAIN.EVAL_PERIOD", "1",
                     "SOLVER.MAX_EPOCH", "2", "TRAIN.MAX_STEPS_PER_EPOCH", "2", "TRAIN.CHECKPOINT_PERIOD", "1",
                     *extra)


def test_training_keeps_frozen_parts_bit_identical_and_resumes_exactly(tmp_path):
    cfg = load_config(None, _finetune_opts(tmp_path / "a"))
    trainer = Trainer(cfg, TensorImageTask())
    init, init_all = _frozen_part(trainer.model), _state(trainer.model)
    in_optimizer = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert all(id(p) not in in_optimizer for m in _bn_layers(trainer.model) for p in m.parameters())
    trainer.train()
    for net in (trainer.model, trainer.ema.module):
        after = net.state_dict()
        assert all(torch.equal(v, after[k]) for k, v in init.items()), "a frozen tensor changed"
    assert not torch.equal(init_all["layer2.0.conv1.weight"], trainer.model.state_dict()["layer2.0.conv1.weight"])
    # the log's lr is the head's (scale 1); the first group (depth 2) learns at 0.7 ** 3 of it
    groups = trainer.optimizer.param_groups
    assert groups[0]["name"] == "depth2_decay" and groups[0]["lr"] == pytest.approx(groups[-1]["lr"] * 0.7 ** 3)

    # resume from the epoch-1 checkpoint in another folder: the same end, bit for bit
    (tmp_path / "b" / "checkpoints").mkdir(parents=True)
    shutil.copyfile(tmp_path / "a" / "checkpoints" / "checkpoint_epoch_00001.pyth",
                    tmp_path / "b" / "checkpoints" / "last.pyth")
    resumed = Trainer(load_config(None, _finetune_opts(tmp_path / "b")), TensorImageTask())
    assert resumed.start_epoch == 1
    resumed.train()
    a, b = (load_checkpoint(tmp_path / x / "checkpoints" / "last.pyth") for x in ("a", "b"))
    for part in ("model_state", "ema_state"):
        assert all(torch.equal(v, b[part][k]) for k, v in a[part].items()), part
    assert a["optimizer_state"]["param_groups"] == b["optimizer_state"]["param_groups"]


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from rs_image.engine import distributed as du

    try:
        # BN frozen in the stem and layer1 only: DDP and precise BN update (and average) the other BN layers
        opts = _finetune_opts(Path(out), "SOLVER.MAX_EPOCH", "1", "MODEL.FROZEN_BN", "False")
        trainer = Trainer(load_config(None, opts), TensorImageTask())
        init = _frozen_part(trainer.model, all_bn=False)
        trainer.train()
        torch.save({"init": init, "model": trainer.model.state_dict(), "ema": trainer.ema.module.state_dict()},
                   Path(out) / f"rank{rank}.pt")
    finally:
        du.destroy_distributed()


@pytest.mark.slow
def test_frozen_parts_under_ddp(tmp_path):
    r0, r1 = spawn_two_ranks(_ddp_worker, tmp_path)
    for key, value in r0["init"].items():
        for r in (r0, r1):
            assert torch.equal(value, r["model"][key]) and torch.equal(value, r["ema"][key]), key
    assert all(torch.equal(v, r1["model"][k]) for k, v in r0["model"].items())
    # the BN layers that are not frozen did learn statistics (a fresh BN has running_var 1)
    var = r0["model"]["layer2.0.bn1.running_var"]
    assert not torch.equal(var, torch.ones_like(var))
