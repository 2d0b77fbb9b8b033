"""The ResNet-RS recipe pieces: EMA with TF warm-up (incl. BN buffers), weight-decay groups, LR schedule,
label smoothing, BN momentum conventions, precise BN, model regularisation keywords."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from rs_image.engine.config import get_cfg
from rs_image.recipe import (
    BatchMixup,
    ModelEma,
    build_cosine_warmup_scheduler,
    build_loss,
    build_sgd,
    check_bn_ema_convention,
    cosine_warmup_lr,
    ema_decay_at,
    model_kwargs_from_cfg,
    param_groups_weight_decay,
    scaled_lr,
    set_bn_momentum,
    stochastic_depth_rates,
    tf_to_torch_bn_momentum,
    update_precise_bn,
)
from tests.videos import data_cfg


def _tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, bias=True), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 2))


def test_ema_decay_rule():
    assert ema_decay_at(1, 0.9999) == pytest.approx(2 / 11)
    assert ema_decay_at(100, 0.9999) == pytest.approx(101 / 110)
    assert ema_decay_at(10**6, 0.9999) == 0.9999
    assert ema_decay_at(1, 0.9999, tf_warmup=False) == 0.9999


def test_ema_averages_weights_and_bn_buffers_with_tf_warmup():
    net = _tiny_net()
    ema = ModelEma(net, decay=0.9999, tf_warmup=True, include_buffers=True)
    expected = {k: v.clone().double() for k, v in net.state_dict().items()}
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for step in range(1, 4):
        net.train()
        net(torch.randn(4, 3, 6, 6)).sum().backward()
        opt.step()
        opt.zero_grad()
        ema.update_parameters(net)
        d = min(0.9999, (1 + step) / (10 + step))
        for k, v in net.state_dict().items():
            if v.is_floating_point():
                expected[k] = d * expected[k] + (1 - d) * v.double()
            else:
                expected[k] = v.clone()
    got = ema.module.state_dict()
    assert ema.num_updates == 3
    for k, v in expected.items():
        if got[k].is_floating_point():
            torch.testing.assert_close(got[k].double(), v, rtol=1e-5, atol=1e-6, msg=k)
        else:
            assert torch.equal(got[k], v), k  # num_batches_tracked copied
    # BN running stats really moved and really are averaged (not copied)
    assert not torch.allclose(got["1.running_mean"], net.state_dict()["1.running_mean"])
    assert all(not p.requires_grad for p in ema.module.parameters())


def test_ema_without_buffers_copies_them():
    net = _tiny_net()
    ema = ModelEma(net, include_buffers=False)
    net.train()
    net(torch.randn(4, 3, 6, 6))
    ema.update_parameters(net)
    assert torch.equal(ema.module[1].running_mean, net[1].running_mean)


def test_ema_restore_continues_exactly():
    net = _tiny_net()
    a = ModelEma(net)
    for _ in range(5):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.1)
        a.update_parameters(net)
    b = ModelEma(_tiny_net())
    b.module.load_state_dict(a.module.state_dict())
    b.set_num_updates(a.num_updates)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1)
    a.update_parameters(net)
    b.update_parameters(net)
    for (k, x), y in zip(a.module.state_dict().items(), b.module.state_dict().values()):
        assert torch.equal(x, y), k


def test_weight_decay_only_on_conv_and_linear_weights():
    import rs_image

    model = rs_image.create_model("resnetrs50", num_classes=3, stage_widths=(8, 16, 32, 64), stage_depths=(1, 1, 1, 1),
                                  stem_width=8)
    groups = param_groups_weight_decay(model, 4e-5)
    names = {id(p): n for n, p in model.named_parameters()}
    decay = {names[id(p)] for p in groups[0]["params"]}
    no_decay = {names[id(p)] for p in groups[1]["params"]}
    assert groups[0]["weight_decay"] == 4e-5 and groups[1]["weight_decay"] == 0.0
    assert decay | no_decay == set(names.values()) and not decay & no_decay
    for n, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            assert f"{n}.weight" in decay
            if m.bias is not None:
                assert f"{n}.bias" in no_decay
        if isinstance(m, nn.BatchNorm2d):
            assert {f"{n}.weight", f"{n}.bias"} <= no_decay
    assert "head.fc.weight" in decay and any(".se." in n for n in decay)


def test_sgd_weight_decay_equals_tf_l2_loss():
    """SGD(weight_decay=wd) == adding TF's wd * sum(w^2) / 2 to the loss (so 4e-5 means the paper's 4e-5)."""
    x = torch.randn(8, 3, 6, 6)
    a, b = _tiny_net(), _tiny_net()
    opt_a = build_sgd(a, 0.1, weight_decay=0.01)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):
        a(x).square().mean().backward()
        opt_a.step(), opt_a.zero_grad()
        decayed = [m.weight for m in b.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        (b(x).square().mean() + 0.01 * sum(w.square().sum() for w in decayed) / 2).backward()
        opt_b.step(), opt_b.zero_grad()
    for (k, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, msg=k)


def test_lr_scaling_rule():
    assert scaled_lr(0.1, 4096, 256) == pytest.approx(1.6)
    assert scaled_lr(0.8, 64, 1024) == pytest.approx(0.05)


def test_cosine_schedule_with_linear_warmup():
    kw = dict(total_steps=100, warmup_steps=10, peak_lr=1.0, warmup_start_lr=0.0, end_lr=0.0)
    lrs = [cosine_warmup_lr(s, **kw) for s in range(101)]
    at_warmup_end = 0.5 * (1 + math.cos(math.pi * 10 / 100))
    assert lrs[0] == 0.0 and lrs[5] == pytest.approx(at_warmup_end / 2)
    assert lrs[10] == pytest.approx(at_warmup_end)
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:11]))  # rising warm-up
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # then decaying
    assert lrs[50] == pytest.approx(0.5) and lrs[100] == pytest.approx(0.0)

    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=1.0)
    sched = build_cosine_warmup_scheduler(opt, total_steps=100, warmup_steps=10)
    seen = []
    for _ in range(20):
        seen.append(opt.param_groups[0]["lr"])
        opt.step(), sched.step()
    assert seen == pytest.approx(lrs[:20])
    # restored scheduler continues identically
    opt2 = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=1.0)
    sched2 = build_cosine_warmup_scheduler(opt2, total_steps=100, warmup_steps=10)
    opt2.load_state_dict(opt.state_dict()), sched2.load_state_dict(sched.state_dict())
    opt.step(), sched.step(), opt2.step(), sched2.step()
    assert opt.param_groups[0]["lr"] == opt2.param_groups[0]["lr"] == pytest.approx(lrs[21])


def test_label_smoothing_loss():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    target = torch.tensor([0])
    logp = torch.log_softmax(logits, 1)
    expected = -(0.9 * logp[0, 0] + 0.1 * logp[0].mean())
    assert build_loss(0.1)(logits, target).item() == pytest.approx(expected.item())
    soft = torch.tensor([[0.5, 0.5, 0.0]])  # mixup targets are accepted too, and smoothed the same way
    smoothed = 0.9 * soft + 0.1 / 3
    assert build_loss(0.1)(logits, soft).item() == pytest.approx(-(smoothed * logp).sum().item())


def test_bn_momentum_conventions():
    assert tf_to_torch_bn_momentum(0.0) == 1.0 and tf_to_torch_bn_momentum(0.9) == pytest.approx(0.1)
    net = _tiny_net()
    assert set_bn_momentum(net, 1.0) == 1 and net[1].momentum == 1.0
    net.train()
    x = torch.randn(16, 3, 6, 6)
    net(x)
    batch_mean = net[0](x).mean(dim=(0, 2, 3))
    torch.testing.assert_close(net[1].running_mean, batch_mean.detach())  # TF momentum 0: last-batch stats
    with pytest.raises(ValueError, match="EMA"):
        check_bn_ema_convention(1.0, ema_enabled=False, ema_include_buffers=True)
    check_bn_ema_convention(1.0, ema_enabled=True, ema_include_buffers=True)
    check_bn_ema_convention(0.1, ema_enabled=False, ema_include_buffers=False)


def test_precise_bn_gives_population_statistics():
    bn_net = nn.Sequential(nn.BatchNorm2d(3), nn.Dropout(0.5))
    bn_net.eval()
    batches = [torch.randn(4, 3, 5, 5) * (i + 1) + i for i in range(6)]
    update_precise_bn(bn_net, iter(batches), num_batches=6)
    data = torch.cat(batches)
    torch.testing.assert_close(bn_net[0].running_mean, data.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-4)
    assert not bn_net.training and not bn_net[0].training  # modes restored


def test_model_kwargs_and_stochastic_depth_schedule():
    import rs_image

    cfg = get_cfg()
    cfg.MODEL.OVERRIDES.stage_widths = [8, 16, 32, 64]
    cfg.MODEL.OVERRIDES.stage_depths = [1, 1, 1, 1]
    cfg.MODEL.OVERRIDES.stem_width = 8
    kwargs = model_kwargs_from_cfg(cfg)
    assert "dropout" not in kwargs and "drop_path_rate" not in kwargs  # -1: the model's own values
    assert kwargs["stage_widths"] == (8, 16, 32, 64)
    cfg.MODEL.DROP_PATH_RATE = 0.1
    cfg.MODEL.DROPOUT_RATE = 0.3
    model = rs_image.create_model("resnetrs50", num_classes=2, **model_kwargs_from_cfg(cfg))
    rates = sorted(stochastic_depth_rates(model).values())
    assert rates == pytest.approx([0.04, 0.06, 0.08, 0.10])  # base x (stage + 2) / 5
    assert model.pretrained_cfg["dropout"] == 0.3


def test_mixup_disabled_by_default_and_video_mixing_when_enabled():
    """One MixUp/CutMix for images and clips: on clips CutMix cuts one box out of every frame."""
    assert BatchMixup.from_cfg(data_cfg(".")) is None
    torch.manual_seed(0)
    clips = torch.rand(4, 3, 5, 16, 16)
    labels = torch.tensor([0, 1, 1, 0])
    # CutMix only: the same box is cut out of every frame.
    cutmix = BatchMixup.from_cfg(data_cfg(".", MIXUP__ENABLE=True, MIXUP__SWITCH_PROB=1.0))
    mixed, targets = cutmix(clips, labels)
    assert mixed.shape == clips.shape and targets.shape == (4, 2)
    assert torch.allclose(targets.sum(1), torch.ones(4))
    changed = (mixed != clips).any(dim=1)  # (B, T, H, W)
    assert torch.equal(changed, changed[:, :1].expand_as(changed))
    # MixUp only: one mixing weight for the whole clip.
    mixup = BatchMixup.from_cfg(data_cfg(".", MIXUP__ENABLE=True, MIXUP__CUTMIX_ALPHA=0.0))
    labels = torch.tensor([0, 1, 1, 1])  # sample 0 (class 0) is mixed with sample 3 (class 1)
    mixed, targets = mixup(clips, labels)
    lam = targets[0, 0]
    expected = lam * clips[0] + (1 - lam) * clips[-1]  # mixed with the rolled batch
    assert torch.allclose(mixed[0], expected, atol=1e-5)
    # PROB 0: untouched clips and one-hot targets.
    never = BatchMixup.from_cfg(data_cfg(".", MIXUP__ENABLE=True, MIXUP__PROB=0.0))
    same, onehot = never(clips, labels)
    assert torch.equal(same, clips) and torch.equal(onehot.argmax(1), labels)
