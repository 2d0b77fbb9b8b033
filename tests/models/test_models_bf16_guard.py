"""The guard against PyTorch's CPU bf16 conv3d bug on inputs shorter than the temporal kernel.

Upstream (torch 2.14.1, oneDNN, AVX-512 BF16 CPUs): under bf16 autocast, ``nn.Conv3d`` with a 3-tap
temporal kernel on an input of T = 2 returns non-finite or run-to-run different weight gradients for the
same input; the forward is right. ``rs_image.models.layers.Conv3d`` (built by ``Ops`` for every 3D and
(2+1)D network) runs such inputs in float32 and every other input exactly as ``nn.Conv3d`` does.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rs_video
from rs_image.models.layers import Conv3d, short_input_needs_float32

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BF16 = dict(device_type="cpu", dtype=torch.bfloat16)


def _weight_grad(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    conv.zero_grad()
    with torch.autocast(**BF16):
        out = conv(x)
    out.float().square().sum().backward()
    return conv.weight.grad.clone()


def _same_and_finite(grads) -> bool:
    return all(torch.isfinite(g).all() and torch.equal(g, grads[0]) for g in grads)


def test_upstream_bug_where_the_cpu_has_it_and_the_guard_in_the_same_loop():
    torch.manual_seed(0)
    plain = nn.Conv3d(16, 16, (3, 1, 1), padding=(1, 0, 0))
    guarded = Conv3d(16, 16, (3, 1, 1), padding=(1, 0, 0))
    guarded.load_state_dict(plain.state_dict())
    x = torch.randn(2, 16, 2, 8, 8)  # T = 2 under a 3-tap kernel
    plain_grads, guarded_grads = [], []
    for _ in range(20):
        plain_grads.append(_weight_grad(plain, x))
        guarded_grads.append(_weight_grad(guarded, x))

    assert _same_and_finite(guarded_grads), "the guarded conv must be finite and deterministic"
    # Close to the gradient of float32 arithmetic on the same weights and input.
    reference = nn.Conv3d(16, 16, (3, 1, 1), padding=(1, 0, 0))
    reference.load_state_dict(plain.state_dict())
    reference(x).square().sum().backward()
    exact = reference.weight.grad
    assert torch.allclose(guarded_grads[0], exact, rtol=2e-2, atol=1e-2 * float(exact.abs().max()))

    bad = sum(not torch.isfinite(g).all() or not torch.equal(g, plain_grads[0]) for g in plain_grads)
    if bad == 0:
        pytest.skip("this CPU's bf16 conv3d gave 20 equal, finite gradients: it does not have the upstream bug")
    assert bad > 0  # reported for the record: the plain layer failed `bad` of 20 times here


@pytest.mark.parametrize("frames", [3, 4, 8])
def test_long_enough_inputs_take_the_plain_path_bit_for_bit(frames):
    torch.manual_seed(1)
    plain = nn.Conv3d(8, 8, (3, 3, 3), padding=1)
    guarded = Conv3d(8, 8, (3, 3, 3), padding=1)
    guarded.load_state_dict(plain.state_dict())
    x = torch.randn(1, 8, frames, 5, 5)
    with torch.autocast(**BF16):
        a, b = plain(x), guarded(x)
    assert a.dtype == b.dtype == torch.bfloat16
    assert torch.equal(a, b)
    assert torch.equal(_weight_grad(plain, x), _weight_grad(guarded, x))


def test_guard_decision():
    short, long = torch.zeros(1, 1, 2, 1, 1), torch.zeros(1, 1, 3, 1, 1)
    assert not short_input_needs_float32(short, 3)  # float32 input, no autocast: nothing to guard
    assert short_input_needs_float32(short.bfloat16(), 3)  # a bf16 model has the same kernel
    with torch.autocast(**BF16):
        assert short_input_needs_float32(short, 3)
        assert not short_input_needs_float32(long, 3)
        assert not short_input_needs_float32(short, 1)
    # The guarded path returns what autocast would have: bf16.
    conv = Conv3d(1, 1, (3, 1, 1), padding=(1, 0, 0))
    with torch.autocast(**BF16):
        assert conv(short).dtype == torch.bfloat16


def test_no_graph_break_under_compile():
    conv = Conv3d(4, 4, (3, 3, 3), padding=1)

    def step(x):
        with torch.autocast(**BF16):
            return conv(x)

    for frames in (2, 6):  # the guarded and the plain branch
        explanation = torch._dynamo.explain(step)(torch.randn(1, 4, frames, 4, 4))
        assert explanation.graph_break_count == 0, explanation.break_reasons


@pytest.mark.parametrize("name", ["rs3d_50", "rs2plus1d_50"])
def test_guarded_video_model_trains_finite_and_deterministic_in_bf16(name):
    """A tiny network of the shipped family with a 4-frame clip: T = 2 after the stem's temporal stride 2,
    the case of a Kinetics config debugged on a CPU. Three bf16 steps, twice from the same start."""
    def train() -> dict:
        torch.manual_seed(0)
        model = rs_video.create_model(name, num_classes=3, stage_depths=(1, 1, 1, 1), stage_widths=(8, 16, 16, 16),
                                      stem_width=8)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        x, y = torch.randn(2, 3, 4, 32, 32), torch.tensor([0, 2])
        for _ in range(3):
            opt.zero_grad()
            with torch.autocast(**BF16):
                loss = nn.functional.cross_entropy(model(x).float(), y)
            loss.backward()
            opt.step()
            assert torch.isfinite(loss)
        return {k: v.clone() for k, v in model.state_dict().items()}

    first, second = train(), train()
    for key, value in first.items():
        assert torch.isfinite(value.float()).all(), key
        assert torch.equal(value, second[key]), key
