"""Export: torch.export (.pt2), ONNX (dynamo exporter, run in onnxruntime) and safetensors, each reloaded and
compared with eager; dynamic batch for every model, time and space from their minima; tools/export.py."""

import importlib.util
import json
import re

import pytest
import torch
from torch import nn

import rs_image
import rs_video
import rs_video.cli.export as export_tool
from rs_image.export import ExportError, ExportMismatchError, export_model, min_dynamic_sizes
from rs_image.models import save_state_dict
from tests.conftest import randomize_bn

# rs3d_50's architecture (and the image model's), narrow and one block per stage.
TINY = dict(stage_widths=(8, 16, 32, 64), stage_depths=(1, 1, 1, 1), stem_width=8)
TINY_ARGS = [
    "--override", "stage_widths=(8,16,32,64)", "--override", "stage_depths=(1,1,1,1)", "--override", "stem_width=8",
]


def _tiny(name, **kw):
    torch.manual_seed(0)
    create = rs_video.create_model if name in rs_video.list_models() else rs_image.create_model
    return randomize_bn(create(name, **TINY, **kw)).eval()


def _eager(model, x):
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("name,shape,other", [
    ("resnetrs50", (1, 3, 64, 64), (3, 3, 37, 50)),
    ("rs3d_50", (1, 3, 8, 64, 64), (3, 3, 5, 37, 50)),
])
@pytest.mark.slow
def test_torch_export_reloads_with_dynamic_batch_time_and_space(tmp_path, name, shape, other):
    m = _tiny(name)
    dynamic = ("batch", "space") + (("time",) if len(shape) == 5 else ())
    report = export_model(m, tmp_path / "m.pt2", "export", shape, dynamic)
    # Batch 1 is traced as 2; the second check varies every dynamic dimension.
    assert report.input_shape == (2,) + shape[1:]
    assert [c.input_shape[0] for c in report.checks] == [2, 1]
    assert all(a != b for a, b in zip(report.checks[0].input_shape[2:], report.checks[1].input_shape[2:]))
    assert report.max_abs_diff <= 1e-5 and report.dynamic == min_dynamic_sizes(m)
    assert report.dynamic == ({"batch": 1, "space": 33, "time": 4} if len(shape) == 5 else {"batch": 1, "space": 33})
    program = torch.export.load(str(tmp_path / "m.pt2")).module()
    x = torch.randn(other)
    with torch.no_grad():
        assert (program(x) - _eager(m, x)).abs().max() <= 1e-5
        small = list(other)
        small[-1] = 32  # below the minimum: the last map would be 1 pixel wide, which the trace assumed away
        with pytest.raises(AssertionError, match=r"Guard failed: x.size\(\)\[\d\] >= 33"):
            program(torch.randn(small))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rs2plus1d_50", "slow_r50", "i3d_r50", "c2d_r50"])
def test_every_video_family_exports_with_dynamic_dims(tmp_path, name):
    m = _tiny(name)
    mins = min_dynamic_sizes(m)
    assert mins == {"batch": 1, "space": 33, "time": 2 if name == "slow_r50" else 4}
    # Traced at 2x8x64x64, checked there and (after torch.export.load) at 1x6x48x40.
    report = export_model(m, tmp_path / "m.pt2", "export", (2, 3, 8, 64, 64), ("batch", "time", "space"))
    assert [c.input_shape for c in report.checks] == [(2, 3, 8, 64, 64), (1, 3, 6, 48, 40)]
    assert report.max_abs_diff <= 1e-5 and report.checks[1].runtime == "torch.export.load"


@pytest.mark.parametrize("name,shape,other", [
    ("resnetrs50", (2, 3, 64, 64), (3, 3, 41, 35)),
    ("rs3d_50", (2, 3, 8, 64, 64), (3, 3, 5, 41, 35)),
])
@pytest.mark.slow
def test_onnx_export_runs_in_onnxruntime(tmp_path, name, shape, other):
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    import onnx

    m = _tiny(name)
    dynamic = ("batch", "space") + (("time",) if len(shape) == 5 else ())
    report = export_model(m, tmp_path / "m.onnx", "onnx", shape, dynamic)
    assert report.opset == 20 and len(report.checks) == 2
    assert all(c.runtime.startswith("onnxruntime") for c in report.checks) and report.max_abs_diff <= 1e-4
    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert [o.version for o in proto.opset_import if o.domain == ""] == [20]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [bool(d.dim_param) for d in dims] == [True, False] + [True] * (len(shape) - 2)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(other)
    (out,) = session.run(None, {"input": x.numpy()})
    assert (torch.from_numpy(out) - _eager(m, x)).abs().max() <= 1e-4


def test_safetensors_holds_the_weights_and_the_pretrained_cfg(tmp_path):
    from safetensors import safe_open

    m = _tiny("rs3d_50", num_classes=7)
    report = export_model(
        m, tmp_path / "w.safetensors", "safetensors", (1, 3, 4, 32, 32), metadata={"model": "rs3d_50"}
    )
    assert report.max_abs_diff == 0 and report.checks[0].runtime.startswith("safetensors reloaded")
    with safe_open(str(tmp_path / "w.safetensors"), "pt") as f:
        meta = f.metadata()
        assert set(f.keys()) == set(m.state_dict())
    assert meta["model"] == "rs3d_50" and meta["format"] == "pt"
    cfg = json.loads(meta["pretrained_cfg"])
    assert cfg == json.loads(json.dumps(m.pretrained_cfg)) and cfg["num_classes"] == 7 and cfg["num_frames"] == 32
    again = rs_video.create_model("rs3d_50", num_classes=7, pretrained=tmp_path / "w.safetensors", **TINY).eval()
    x = torch.randn(1, 3, 4, 32, 32)
    assert torch.equal(_eager(again, x), _eager(m, x))


class _CountsCalls(nn.Module):
    """Scales by how often it ran: the export bakes in the count it saw when traced, so it differs from eager."""

    def __init__(self):
        super().__init__()
        self.calls = 0
        self.pretrained_cfg = {"input_size": (3, 8, 8)}

    def forward(self, x):
        self.calls += 1
        return x * self.calls


def test_a_mismatch_fails_loudly_and_writes_nothing(tmp_path, monkeypatch, capsys):
    with pytest.raises(ExportMismatchError, match=r"differs from eager by max \|diff\| .* > 0.0001 .*not written"):
        export_model(_CountsCalls(), tmp_path / "m.pt2", "export", (1, 3, 8, 8))
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(export_tool, "build_model", lambda *a: _CountsCalls())
    assert export_tool.main(["--model", "resnetrs50", "--format", "export", "--output", str(tmp_path / "m.pt2")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("export: FAILED: export export of m.pt2 differs from eager by max |diff|")
    assert list(tmp_path.iterdir()) == []


def test_export_errors_name_the_problem(tmp_path, monkeypatch):
    m = _tiny("resnetrs50")
    cases = [
        (dict(fmt="tflite", path="m.tflite"), "unknown export format 'tflite'; choose from export, onnx, safetensors"),
        (dict(fmt="onnx", path="m.pt2"), r"the onnx format writes .onnx files, not .*m.pt2"),
        (dict(fmt="export", path="m.pt2", dynamic=("time",)), "an image model has no time axis"),
        (dict(fmt="export", path="m.pt2", dynamic=("depth",)), r"unknown dynamic dimension\(s\) \['depth'\]"),
        (dict(fmt="safetensors", path="m.safetensors", dynamic=("batch",)), "holds weights only"),
        (dict(fmt="export", path="m.pt2", dynamic=("space",), shape=(1, 3, 32, 32)),
         "a dynamic space is traced at 32, below its smallest size 33"),
    ]
    for kw, match in cases:
        with pytest.raises(ExportError, match=match):
            export_model(m, tmp_path / kw["path"], kw["fmt"], kw.get("shape", (1, 3, 64, 64)), kw.get("dynamic", ()))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "onnxscript" else real_find_spec(n, *a))
    with pytest.raises(ExportError, match=r"ONNX export needs (onnx and )?onnxscript: pip install 'rs-video\[onnx\]'"):
        export_model(m, tmp_path / "m.onnx", "onnx", (1, 3, 64, 64))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_tool_exports_a_checkpoint_with_its_classifier(tmp_path, capsys):
    save_state_dict(_tiny("rs3d_50", num_classes=7), tmp_path / "ckpt.safetensors")
    out = tmp_path / "rs3d.pt2"
    argv = ["--model", "rs3d_50", "--weights", str(tmp_path / "ckpt.safetensors"), "--format", "export",
            "--frames", "8", "--size", "64", "--dynamic", "batch", "--output", str(out), *TINY_ARGS]
    assert export_tool.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == f"exported rs3d_50 to {out} (torch.export; traced at 2x3x8x64x64; dynamic batch>=1)"
    checks = [re.fullmatch(r"  check (\S+) with torch.export.load: max \|diff\| (\S+) \(outputs up to (\S+)\)", line)
              for line in lines[1:]]
    assert [c.group(1) for c in checks] == ["2x3x8x64x64", "1x3x8x64x64"]
    assert all(float(c.group(2)) <= 1e-5 and float(c.group(3)) > 0 for c in checks)
    # The classifier size comes from the weights.
    assert torch.export.load(str(out)).module()(torch.randn(3, 3, 8, 64, 64)).shape == (3, 7)


@pytest.mark.parametrize("argv,message", [
    (["--model", "rs3d_5O", "--format", "export"], "unknown model 'rs3d_5O'; did you mean rs3d_50"),
    (["--model", "rs3d_50", "--format", "export", "--weights", "nope.pth"], "weights file not found: nope.pth"),
    (["--model", "resnetrs50", "--format", "export", "--frames", "8"], "an image model takes no frames"),
    (["--model", "resnetrs50", "--format", "export", "--override", "depth=3"],
     r"--override: resnetrs50: unknown keyword"),
    (["--model", "resnetrs50", "--format", "export", "--dynamic", "batch,tim"],
     r"unknown dynamic dimension\(s\) \['tim'\]"),
])
def test_tool_user_errors_exit_2_with_one_line(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        export_tool.main(argv + ["--size", "64", *TINY_ARGS])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("export: error: ")
    assert re.search(message, err[0]), err[0]
    assert list(tmp_path.iterdir()) == []
