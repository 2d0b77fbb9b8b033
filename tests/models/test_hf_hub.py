"""Weights on the Hugging Face Hub: tools/export.py --hf-dir writes a hub folder; a real huggingface_hub cache
holding it is read offline through create_model(pretrained="hf-hub:...") and the engine's initial weights,
with the same logits; an uncached name offline and a folder of another architecture are clear errors."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import rs_video
from rs_image.models.weights import HubError
from tests.helpers import ROOT

huggingface_hub = pytest.importorskip("huggingface_hub")
hf_constants = pytest.importorskip("huggingface_hub.constants")  # lazy: not an attribute until imported

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_ARGS = ["--override", "stage_widths=(8,16,32,64)", "--override", "stage_depths=(1,1,1,1)", "--override",
             "stem_width=8"]
TINY = dict(stage_widths=(8, 16, 32, 64), stage_depths=(1, 1, 1, 1), stem_width=8)
REPO = "rs-test/rs3d-tiny"


def fill_hub_cache(cache: Path, repo_id: str, folder: Path, commit: str = "a" * 40) -> None:
    """huggingface_hub's cache layout (what hf_hub_download leaves behind): content-addressed blobs,
    refs/main -> commit, snapshots/<commit>/<file> -> ../../blobs/<hash> (a relative symlink)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for path in sorted(folder.iterdir()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        shutil.copyfile(path, repo / "blobs" / digest)
        os.symlink(os.path.join("..", "..", "blobs", digest), snapshot / path.name)


def _export(tmp_path: Path, rand_bn) -> Path:
    from rs_video.cli.export import main as export_main

    model = rand_bn(rs_video.create_model("rs3d_50", num_classes=3, **TINY))
    cfg = {"MODEL": {"NAME": "rs3d_50"}, "DATA": {"DATASET": "charades"}, "SOLVER": {"BASE_LR": 0.1, "MAX_EPOCH": 30}}
    torch.save({"model_state": model.state_dict(), "epoch": 30, "cfg": yaml.safe_dump(cfg)}, tmp_path / "last.pyth")
    (tmp_path / "classes.txt").write_text("c000 Holding some clothes\nc001 Putting clothes somewhere\nc002 Taking a box\n")
    (tmp_path / "test_results.json").write_text(json.dumps({"mAP": 12.5, "views_per_sample": 30, "split": "test"}))
    folder = tmp_path / "hub"
    assert export_main(["--model", "rs3d_50", "--weights", str(tmp_path / "last.pyth"), "--hf-dir", str(folder),
                        "--class-names", str(tmp_path / "classes.txt"), "--results", str(tmp_path / "test_results.json"),
                        "--repo-id", REPO, "--frames", "4", "--size", "32", *TINY_ARGS]) == 0
    return folder


@pytest.mark.slow
def test_export_hub_folder_and_load_it_offline_from_the_cache(tmp_path, rand_bn):
    folder = _export(tmp_path, rand_bn)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "rs3d_50" and config["num_classes"] == 3
    assert config["label_names"] == ["Holding some clothes", "Putting clothes somewhere", "Taking a box"]
    assert config["model_args"] == {"stage_widths": [8, 16, 32, 64], "stage_depths": [1, 1, 1, 1], "stem_width": 8}
    card = (folder / "README.md").read_text()
    for text in ("pipeline_tag: video-classification", "- mAP: 12.50", "- DATA.DATASET: charades",
                 "- epochs trained: 30", f'pretrained="hf-hub:{REPO}"', "Taking a box"):
        assert text in card, text

    hf_home = tmp_path / "hf_home"
    fill_hub_cache(hf_home / "hub", REPO, folder)
    cached = huggingface_hub.scan_cache_dir(hf_home / "hub")  # the library's own reading of the layout
    assert [(r.repo_id, sorted(f.file_name for rev in r.revisions for f in rev.files)) for r in cached.repos] == [
        (REPO, ["README.md", "config.json", "model.safetensors"])]

    x = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.save(x, tmp_path / "x.pt")
    script = f"""
import torch, rs_video, rs_video.task
from rs_image.engine import load_config, get_task
from rs_image.models.weights import HubError
x = torch.load({str(tmp_path / 'x.pt')!r})
model = rs_video.create_model("rs3d_50", pretrained="hf-hub:{REPO}").eval()
cfg = load_config(None, ["TASK", "video", "MODEL.NAME", "rs3d_50", "MODEL.NUM_CLASSES", "3", "MODEL.OVERRIDES",
                         "{{'stage_widths': (8, 16, 32, 64), 'stage_depths': (1, 1, 1, 1), 'stem_width': 8}}",
                         "TRAIN.CHECKPOINT_FILE_PATH", "hf-hub:{REPO}"])
task = get_task("video")
engine_model = task.create_model(cfg)
task.load_initial_weights(engine_model, cfg)
try:
    rs_video.create_model("rs3d_50", pretrained="hf-hub:rs-test/not-cached")
    error = ""
except HubError as e:
    error = str(e)
with torch.no_grad():
    torch.save({{"logits": model(x), "engine": engine_model.eval()(x), "names": model.pretrained_cfg["label_names"],
                "error": error}}, {str(tmp_path / 'out.pt')!r})
"""
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_CACHE", None)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = torch.load(tmp_path / "out.pt", weights_only=True)
    eager = rand_bn(rs_video.create_model("rs3d_50", num_classes=3, **TINY)).eval()
    eager.load_state_dict(torch.load(tmp_path / "last.pyth", weights_only=True)["model_state"])
    with torch.no_grad():
        expected = eager(x)
    assert torch.equal(out["logits"], expected) and torch.equal(out["engine"], expected)
    assert out["names"] == config["label_names"]
    assert "hf-hub:rs-test/not-cached: cannot get model.safetensors: HF_HUB_OFFLINE is set" in out["error"]


def test_hub_folder_of_another_architecture_and_uncached_name_offline(tmp_path, rand_bn, monkeypatch, capsys):
    folder = _export(tmp_path, rand_bn)
    with pytest.raises(HubError, match=r"its config.json is for architecture 'rs3d_50', not 'i3d_r50'"):
        rs_video.create_model("i3d_r50", pretrained=str(folder))
    from rs_video.cli.export import main as export_main

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(SystemExit) as info:
        export_main(["--model", "rs3d_50", "--weights", "hf-hub:nobody/nothing", "--format", "safetensors"])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and len(err.splitlines()) == 1, err
    assert "hf-hub:nobody/nothing: cannot get model.safetensors: HF_HUB_OFFLINE is set" in err
