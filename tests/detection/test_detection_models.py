"""Detection-ready backbones: per-stage stride and dilation, the RoI action head, PyTorchVideo's
``slow_r50_detection`` equivalence, and ResNet-RS in torchvision's Faster R-CNN."""

import pytest
import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.ops import roi_align

import rs_image
import rs_video
from rs_image.models import Ops, RoIHead, fpn_backbone, make_stages, stage_backbone
from tests.conftest import randomize_bn

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = dict(stage_widths=(8, 16, 16, 16), stage_depths=(1, 1, 1, 1), stem_width=8)
DETECTION = dict(spatial_strides=(1, 2, 2, 1), spatial_dilations=(1, 1, 1, 2))


@pytest.mark.parametrize("family, build", [
    ("2d", lambda **kw: rs_image.create_model("resnetrs50", **kw)),
    ("3d", lambda **kw: rs_video.create_model("rs3d_50", **kw)),
    ("2plus1d", lambda **kw: rs_video.create_model("rs2plus1d_50", **kw)),
    ("tf_same", lambda **kw: rs_video.create_model("rs3d_50_tf_mg", **kw)),
    ("slow", lambda **kw: rs_video.create_model("slow_r50", **kw)),
])
def test_stride_and_dilation_per_stage_in_every_family(family, build):
    m = build(features_only=True, **TINY, **DETECTION).eval()
    assert m.feature_info.reduction() == [4, 8, 16, 16]
    x = torch.randn(1, 3, 64, 64) if family == "2d" else torch.randn(1, 3, 8, 64, 64)
    with torch.no_grad():
        maps = m(x)
    assert [f.shape[-1] for f in maps] == [16, 8, 4, 4]  # the reported reduction is the real one
    conv2 = m.layer4[0].conv2
    conv2 = conv2.conv_s if family == "2plus1d" else conv2
    assert conv2.dilation[-2:] == (2, 2) and conv2.stride[-2:] == (1, 1)
    assert m.layer3[0].conv2.dilation[-1] == 1 if family != "2plus1d" else m.layer3[0].conv2.conv_s.dilation[-1] == 1


def test_dilated_conv_equals_a_zero_stuffed_kernel():
    """A dilation-2 3x3 conv padded 'same' equals the 5x5 conv whose kernel has the taps 2 apart, for the
    symmetric and the TF 'same' paddings (stride 1: both pad 2 on each side)."""
    torch.manual_seed(0)
    x = torch.randn(1, 4, 9, 10)
    for padding in ("symmetric", "tf_same"):
        conv = Ops(2, padding=padding).conv(4, 3, kernel=3, dilation=2)
        dense = torch.zeros(3, 4, 5, 5)
        dense[:, :, ::2, ::2] = conv.weight.detach()
        assert torch.allclose(conv(x), nn.functional.conv2d(x, dense, padding=2), atol=1e-6)
    # TF 'same' with stride 2 pads for the dilated extent 5: (1, 2) on the even width 10, (2, 2) on the odd
    # height 9, as TF does.
    strided = Ops(2, padding="tf_same").conv(4, 3, kernel=3, stride=2, dilation=2)
    dense = torch.zeros(3, 4, 5, 5)
    dense[:, :, ::2, ::2] = strided.weight.detach()
    ref = nn.functional.conv2d(nn.functional.pad(x, (1, 2, 2, 2)), dense, stride=2)
    assert torch.allclose(strided(x), ref, atol=1e-6)


def test_bad_stride_or_dilation_tables():
    tables = dict(stage_depths=(1, 1), stage_widths=(4, 8), temporal_strides=(1, 1), temporal_kernels_a=(1, 1),
                  temporal_kernels_b=(1, 1), spatial_strides=(1, 2))
    with pytest.raises(ValueError, match="spatial_dilations has 1 entries for 2 stages"):
        make_stages(Ops(2), 8, **tables, spatial_dilations=(1,))
    with pytest.raises(ValueError, match="spatial_dilations must be >= 1"):
        make_stages(Ops(2), 8, **tables, spatial_dilations=(1, 0))


def test_roi_head_is_slowfast_resnet_roi_head():
    """Temporal mean of the last map -> roi_align at 1/stride -> max over the grid -> linear; logits in
    training (eval: sigmoid); the two box layouts of torchvision give the same rows."""
    torch.manual_seed(0)
    m = randomize_bn(rs_video.create_model("rs3d_50_detection", num_classes=5, **TINY)).eval()
    assert m.head.spatial_scale == 1 / 16 and m.head.aligned
    x = torch.randn(2, 3, 8, 64, 64)
    boxes = torch.tensor([[0, 4.0, 6.0, 40.0, 60.0], [1, 0.0, 0.0, 63.0, 63.0], [1, 20.5, 10.0, 50.0, 30.0]])
    with torch.no_grad():
        feats = m.forward_features(x)
        rois = roi_align(feats.mean(2), boxes, 7, 1 / 16, 0, True)
        expected = m.head.fc(rois.amax((2, 3)))
        assert torch.allclose(m(x, boxes), expected.sigmoid(), atol=1e-6)
        as_list = m(x, [boxes[:1, 1:], boxes[1:, 1:]])
        assert torch.equal(as_list, m(x, boxes))
        m.head.train()  # logits in training mode (dropout 0.5 is then active: compare pre-dropout features)
        m.head.dropout.p = 0.0
        assert torch.allclose(m(x, boxes), expected, atol=1e-6)
    with pytest.raises(ValueError, match="needs boxes"):
        m(x)
    with pytest.raises(ValueError, match="boxes given"):
        rs_video.create_model("rs3d_50", **TINY)(x, boxes)


def test_detection_models_registered():
    names = rs_video.list_models("*_detection")
    assert names == ["slow_r50_detection"] + [f"rs3d_{d}_detection" for d in (50, 101, 152, 200)]
    m = rs_video.create_model("slow_r50_detection")
    assert m.num_classes == 80 and isinstance(m.head, RoIHead) and not m.head.aligned
    assert m.feature_info.reduction()[-1] == 16 and m.pretrained_cfg["num_frames"] == 4


@pytest.mark.slow
def test_pytorchvideo_slow_r50_detection_equivalence(tmp_path):
    """PyTorchVideo's hub ``slow_r50_detection`` (``create_resnet_with_roi_head``) with every weight and BN
    statistic randomised: its state dict loads strictly into ours and both give the same scores (float64)."""
    hub = pytest.importorskip("pytorchvideo.models.hub")
    torch.manual_seed(0)
    ref = hub.slow_r50_detection(pretrained=False)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in ref.parameters():  # conv weights are random already; biases and the projection too
            if p.dim() == 1:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        ref.detection_head.proj.weight.copy_(torch.randn(ref.detection_head.proj.weight.shape, generator=g) * 1e-4)
    randomize_bn(ref, seed=2).eval()
    torch.save({"model_state": ref.state_dict()}, tmp_path / "SLOW_4x16_R50_DETECTION.pyth")
    ours = rs_video.create_model("slow_r50_detection", pretrained=tmp_path / "SLOW_4x16_R50_DETECTION.pyth").eval()
    x = torch.randn(2, 3, 4, 64, 64, dtype=torch.float64)  # PyTorchVideo's head pools T=4 (its 4x16 clips)
    boxes = torch.tensor([[0, 3.0, 5.0, 50.0, 60.0], [1, 0.0, 0.0, 63.0, 63.0], [1, 20.25, 30.5, 40.0, 44.0]],
                         dtype=torch.float64)
    with torch.no_grad():
        scores, ref_scores = ours.double()(x, boxes), ref.double()(x, boxes)
        assert scores.shape == (3, 80) and 0.01 < scores.min() and scores.max() < 0.99  # not saturated
        assert (scores - ref_scores).abs().max().item() <= 1e-10
        ours.head.test_activation, ref.detection_head.activation = "none", None
        logits, ref_logits = ours(x, boxes), ref(x, boxes)
        assert ((logits - ref_logits).abs().max() / ref_logits.abs().max()).item() <= 1e-10


def test_resnetrs_in_torchvision_faster_rcnn():
    torch.manual_seed(0)
    model = rs_image.create_model("resnetrs50", stage_depths=(1, 1, 1, 1), stage_widths=(8, 16, 32, 64), stem_width=8)
    backbone = fpn_backbone(model, out_channels=32, trainable_layers=3)
    assert backbone.out_channels == 32
    maps = backbone(torch.rand(1, 3, 64, 64))
    assert list(maps) == ["0", "1", "2", "3", "pool"] and [m.shape[-1] for m in maps.values()] == [16, 8, 4, 2, 1]
    assert not model.stem.conv1.weight.requires_grad and not model.layer1[0].conv1.weight.requires_grad
    detector = FasterRCNN(backbone, num_classes=3, min_size=96, max_size=128, rpn_batch_size_per_image=32,
                          box_batch_size_per_image=16)
    images = [torch.rand(3, 96, 128), torch.rand(3, 112, 96)]
    targets = [dict(boxes=torch.tensor([[10.0, 10, 60, 70]]), labels=torch.tensor([1])),
               dict(boxes=torch.tensor([[5.0, 20, 80, 90], [30, 30, 50, 50]]), labels=torch.tensor([2, 1]))]
    detector.train()
    optimizer = torch.optim.SGD([p for p in detector.parameters() if p.requires_grad], lr=0.01)
    losses = detector(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    before = model.layer4[0].bn3.weight.detach().clone()
    sum(losses.values()).backward()
    optimizer.step()
    assert model.stem.conv1.weight.grad is None and not torch.equal(model.layer4[0].bn3.weight, before)
    detector.eval()
    with torch.no_grad():
        out = detector(images)
    assert len(out) == 2 and all(set(o) == {"boxes", "labels", "scores"} for o in out)
    assert all(o["boxes"].shape[1] == 4 and len(o["boxes"]) == len(o["scores"]) for o in out)
    # Without FPN: one OrderedDict map and its width, the contract of a single-map detector.
    plain = stage_backbone(rs_image.create_model("resnetrs50", **TINY, **DETECTION), returned_layers=(4,))
    out = plain(torch.rand(1, 3, 64, 64))
    assert list(out) == ["0"] and out["0"].shape == (1, plain.out_channels, 4, 4)
