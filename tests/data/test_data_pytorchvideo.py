"""DATA.BACKEND pytorchvideo (rs_video.benchmark: map-style wrapper with a correct length, chosen by the video
task) and the opt-in transforms shim."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from rs_image.engine import get_task
from rs_video.data import PyTorchVideoKinetics, build_pytorchvideo_dataset
from rs_video.data import VideoDataset
from tests.videos import data_cfg, list_dataset, write_list, write_video

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    # Kinetics files carry an audio track: decode_audio=False must keep it out of the items.
    return list_dataset(tmp_path_factory.mktemp("ptv"), splits=("train", "test"), num_videos=3, audio=True)


def test_video_task_builds_the_loader_that_data_backend_names(root):
    # No importorskip: the wrapper imports pytorchvideo only when it loads its first clip.
    task = get_task("video")
    assert isinstance(task.build_dataset(data_cfg(root, DATA__BACKEND="pytorchvideo"), "train"), PyTorchVideoKinetics)
    assert isinstance(task.build_dataset(data_cfg(root, DATA__BACKEND="native"), "train"), VideoDataset)


@pytest.mark.parametrize("decoder", ["pyav", "decord"])
def test_train_wrapper_has_a_length_and_our_item_format(root, decoder):
    pytest.importorskip("pytorchvideo")
    cfg = data_cfg(root, DATA__BACKEND="pytorchvideo", DATA__DECODER=decoder)
    dataset = build_pytorchvideo_dataset(cfg, "train")
    assert isinstance(dataset, PyTorchVideoKinetics) and len(dataset) == 3
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=0)
    assert len(loader) == 2  # PyTorchVideo's own LabeledVideoDataset has no len()
    for epoch in range(2):  # the wrapper restarts the underlying iterator for the next epoch
        batches = list(loader)
        assert [b["video"].shape for b in batches] == [(2, 3, 4, 32, 32), (1, 3, 4, 32, 32)]
        indices = torch.cat([b["video_index"] for b in batches]).tolist()
        assert sorted(indices) == [0, 1, 2]
        assert set(batches[0]) == {"video", "label", "video_index", "view_index"}
        assert torch.equal(torch.cat([b["label"] for b in batches]), torch.tensor(indices) % 2)


def test_test_wrapper_covers_every_video_and_view(root):
    pytest.importorskip("pytorchvideo")
    cfg = data_cfg(root, DATA__BACKEND="pytorchvideo", DATA__DECODER="pyav")
    dataset = build_pytorchvideo_dataset(cfg, "test")
    assert len(dataset) == 3 * 2 * 3 and dataset.num_views == 6
    items = [dataset[i] for i in range(len(dataset))]
    assert sorted((it["video_index"], it["view_index"]) for it in items) == [(v, w) for v in range(3) for w in range(6)]
    assert all(it["video"].shape == (3, 4, 40, 40) and it["failed"] is False for it in items)


def test_auto_decoder_falls_back_to_pyav_and_broken_set_fails_clearly(tmp_path):
    pytest.importorskip("pytorchvideo")
    write_video(tmp_path / "ok.mp4", num_frames=12)
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    write_list(tmp_path / "train.csv", [("bad.mp4", 0)])
    cfg = data_cfg(tmp_path, DATA__BACKEND="pytorchvideo")  # DATA.DECODER auto -> pyav here
    dataset = build_pytorchvideo_dataset(cfg, "train")
    assert dataset.decoder == "pyav"
    with pytest.raises(RuntimeError, match="pytorchvideo \\(pyav\\)"):
        dataset[0]


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_shim_makes_pytorchvideo_transforms_importable_and_we_never_import_them(root):
    pytest.importorskip("pytorchvideo")
    result = run_python(f"""
        import sys, warnings
        warnings.simplefilter("ignore")
        import torch
        try:
            import pytorchvideo.transforms
            print("IMPORTED_WITHOUT_SHIM")
        except ModuleNotFoundError as error:
            print("BROKEN_WITHOUT_SHIM", "functional_tensor" in str(error))
        for name in [m for m in sys.modules if m.startswith("pytorchvideo.transforms")]:
            del sys.modules[name]

        # Our library, both backends, never pulls pytorchvideo.transforms in.
        from rs_video.data import build_pytorchvideo_dataset
        from rs_video.data import build_video_dataset
        from tests.videos import data_cfg
        for backend, build in (("native", build_video_dataset), ("pytorchvideo", build_pytorchvideo_dataset)):
            cfg = data_cfg({str(root)!r}, DATA__BACKEND=backend, DATA__DECODER="pyav")
            build(cfg, "train")[0]
        print("LOADED_WITHOUT_PTV_TRANSFORMS", "pytorchvideo.transforms" not in sys.modules)

        from rs_video.data import enable_pytorchvideo_transforms
        ptv = enable_pytorchvideo_transforms()
        clip = torch.randint(0, 256, (8, 3, 32, 40), dtype=torch.uint8)  # T C H W for RandAugment
        out = ptv.RandAugment(magnitude=9, num_layers=2)(clip)
        scaled = ptv.ShortSideScale(16)(clip.permute(1, 0, 2, 3).float())
        print("SHIM_WORKS", tuple(out.shape), tuple(scaled.shape))
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "BROKEN_WITHOUT_SHIM True" in result.stdout
    assert "LOADED_WITHOUT_PTV_TRANSFORMS True" in result.stdout
    assert "SHIM_WORKS (8, 3, 32, 40) (3, 8, 16, 20)" in result.stdout
