"""fvcore (the zoo's counts, traced with the deprecated torch.jit) and ``torch.utils.flop_counter`` agree on every
family: the latter's FLOPs are exactly 2 x fvcore's conv + linear multiply-adds, so a switch is one line."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from rs_image.models import MODELS
from rs_image.report.catalog import _is_detector
from rs_image.report.counts import count_macs

TINY = dict(stage_widths=(8, 16, 32, 64), stage_depths=(1, 1, 1, 1), stem_width=8)


def _one_name_per_architecture():
    """The first classifier of every architecture family (different stems, blocks, temporal kernels, gates)."""
    seen, names = set(), []
    for family in MODELS.families():
        for name in family.registry.list():
            entry = family.registry.get(name)
            if _is_detector(entry):
                continue
            arch = entry.arch
            key = (family.task, arch.get("variant"), arch.get("block"), str(arch.get("temporal_kernels_a")),
                   arch.get("stem_temporal_kernel"), arch.get("self_gating"), arch.get("stem_type"))
            if key not in seen:
                seen.add(key)
                names.append((name, family.task))
    return names


@pytest.mark.parametrize("name, task", _one_name_per_architecture())
def test_fvcore_and_torch_flop_counter_agree(name, task):
    model = MODELS.create(name, num_classes=7, **TINY).eval()
    x = torch.randn(1, 3, 4, 32, 32) if task == "video" else torch.randn(1, 3, 32, 32)
    macs = count_macs(model, x)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    assert counter.get_total_flops() == 2 * macs["conv_linear"] > 0
