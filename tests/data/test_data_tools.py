"""rs-prepare-kinetics and rs-benchmark-data (rs_video.cli) on tiny real videos."""

from __future__ import annotations

import json
import os
import re
import shutil

import av
import pytest

from rs_video.data import build_video_dataset
from rs_video.data.prepare import prepare_kinetics
from tests.videos import data_cfg, write_broken, write_video


HEADER = "label,youtube_id,time_start,time_end,split\n"


def video_info(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return stream.codec_context.width, stream.codec_context.height, frames, len(container.streams.audio)


@pytest.fixture
def downloads(tmp_path):
    """Official CSVs and a per-class download folder with a landscape mp4 (with audio), a portrait mkv, a
    full-length untrimmed video, a broken file and a row that was never downloaded."""
    ann, raw = tmp_path / "annotations", tmp_path / "raw"
    ann.mkdir()
    (ann / "train.csv").write_text(
        HEADER + "zumba,aaa,0,1,train\n" + "abseiling,bbb,2,3,train\n" + "abseiling,ccc,4,5,train\n"
        + "zumba,ddd,0,1,train\n"
    )
    (ann / "validate.csv").write_text(HEADER + "bowling,eee,1,2,val\n")
    write_video(raw / "zumba" / "aaa_000000_000001.mp4", num_frames=15, width=96, height=64, audio=True)
    write_video(raw / "abseiling" / "bbb_000002_000003.mkv", num_frames=15, width=64, height=96)
    write_broken(raw / "abseiling" / "ccc_000004_000005.mp4", "garbage")
    write_video(raw / "eee.mp4", num_frames=90, fps=30, width=80, height=60)  # full video, trimmed to [1, 2) s
    return ann, raw


@pytest.mark.parametrize("backend", ["pyav", "ffmpeg"])
def test_prepare_kinetics_reencodes_lists_and_resumes(tmp_path, downloads, backend):
    if backend == "ffmpeg" and shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    ann, raw = downloads
    out = tmp_path / "prepared"
    report = prepare_kinetics(str(ann), str(raw), str(out), short_side=32, backend=backend, num_workers=2,
                              progress=False)
    assert report.encoded == 3 and report.skipped_done == 0
    assert [os.path.basename(src) for src, _ in report.unreadable] == ["ccc_000004_000005.mp4"]
    assert report.missing == ["ddd_000000_000001"]
    assert json.loads((out / "classids.json").read_text()) == {"abseiling": 0, "bowling": 1, "zumba": 2}
    assert (out / "train.csv").read_text() == (
        "videos/train/aaa_000000_000001.mp4 2\nvideos/train/bbb_000002_000003.mp4 0\n"
    )
    assert (out / "val.csv").read_text() == "videos/val/eee_000001_000002.mp4 1\n"
    assert "ccc_000004_000005.mp4" in (out / "unreadable.txt").read_text()
    # Short side 32, aspect kept, even sizes, no audio; the untrimmed video is cut to its 1 s segment.
    assert video_info(out / "videos/train/aaa_000000_000001.mp4")[:2] == (48, 32)
    assert video_info(out / "videos/train/bbb_000002_000003.mp4")[:2] == (32, 48)
    assert video_info(out / "videos/train/aaa_000000_000001.mp4")[3] == 0
    width, height, frames, _ = video_info(out / "videos/val/eee_000001_000002.mp4")
    assert (width, height) == (42, 32) and 28 <= frames <= 32
    # The output is directly usable as DATA.PATH_TO_DATA_DIR.
    item = build_video_dataset(data_cfg(out, MODEL__NUM_CLASSES=3, DATA__TRAIN_JITTER_SCALES=[32, 40],
                                         DATA__TRAIN_CROP_SIZE=32), "train")[0]
    assert item["video"].shape == (3, 4, 32, 32)

    mtime = os.path.getmtime(out / "videos/train/aaa_000000_000001.mp4")
    again = prepare_kinetics(str(ann), str(raw), str(out), short_side=32, backend=backend, num_workers=1,
                             progress=False)
    assert again.encoded == 0 and again.skipped_done == 3 and len(again.unreadable) == 1
    assert os.path.getmtime(out / "videos/train/aaa_000000_000001.mp4") == mtime
    assert (out / "train.csv").read_text().count("\n") == 2


def test_prepare_kinetics_cli_and_missing_annotations(tmp_path, downloads, capsys):
    from rs_video.cli import prepare_kinetics as cli

    ann, raw = downloads
    assert cli.main(["--annotations", str(ann), "--videos", str(raw), "--out", str(tmp_path / "o"),
                     "--short-side", "32", "--workers", "1", "--splits", "val", "--no-progress"]) == 0
    assert "1 encoded" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="no official Kinetics CSV"):
        prepare_kinetics(str(raw), str(raw), str(tmp_path / "x"), progress=False)



@pytest.mark.parametrize("layout", ["split_class_tree", "download_layout"])
def test_prepare_kinetics_finds_split_and_class_folders(tmp_path, layout, caplog):
    """The downloader's V/{train,val}/<class>/ tree (CSVs found through V/annotations/), and
    DIR/annotations/*.csv beside flat DIR/{train,val}/ (``--annotations DIR/annotations --videos DIR``)."""
    root = tmp_path / "k400"
    ann = root / "annotations"
    ann.mkdir(parents=True)
    (ann / "train.csv").write_text(HEADER + "zumba,aaa,0,1,train\n" + "abseiling,bbb,2,3,train\n")
    (ann / "val.csv").write_text(HEADER + "bowling,eee,1,2,val\n")
    (ann / "test.csv").write_text(HEADER + "zumba,zzz,1,2,test\n")  # the test split was not downloaded
    for split, label, stem in [("train", "zumba", "aaa_000000_000001"), ("train", "abseiling", "bbb_000002_000003"),
                               ("val", "bowling", "eee_000001_000002")]:
        folder = root / split / label if layout == "split_class_tree" else root / split
        write_video(folder / f"{stem}.mp4", num_frames=10, width=64, height=48)
    out = tmp_path / "prepared"
    with caplog.at_level("WARNING"):
        annotations = root if layout == "split_class_tree" else ann
        report = prepare_kinetics(str(annotations), str(root), str(out), short_side=32, num_workers=1,
                                  progress=False)
    assert (report.encoded, report.missing) == (3, ["zzz_000001_000002"])
    assert (out / "train.csv").read_text() == (
        "videos/train/aaa_000000_000001.mp4 2\nvideos/train/bbb_000002_000003.mp4 0\n"
    )
    assert (out / "val.csv").read_text() == "videos/val/eee_000001_000002.mp4 1\n"
    # A split of which nothing was found gets no (empty) list, and a warning saying where it looked.
    assert not (out / "test.csv").exists() and sorted(report.lists) == ["train", "val"]
    warning = [r.getMessage() for r in caplog.records if "test.csv not written" in r.getMessage()]
    assert len(warning) == 1 and str(root) in warning[0]


def test_prepare_kinetics_fails_when_nothing_listed_is_found(tmp_path, downloads, capsys):
    from rs_video.cli import prepare_kinetics as cli

    ann, _ = downloads
    raw = tmp_path / "elsewhere"
    write_video(raw / "train" / "zumba" / "unrelated.mp4", num_frames=4)
    out = tmp_path / "o"
    with pytest.raises(FileNotFoundError, match="none of the 5 videos listed in") as info:
        prepare_kinetics(str(ann), str(raw), str(out), progress=False)
    assert f"searched {raw / 'train'}, {raw} and their class sub-folders" in str(info.value)
    assert not out.exists()  # no empty lists
    assert cli.main(["--annotations", str(ann), "--videos", str(raw), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("prepare_kinetics: error: none of the 5 videos listed") and err.count("\n") == 1
    assert "Traceback" not in err


def test_benchmark_tool_prints_the_comparison_table(tmp_path, capsys):
    pytest.importorskip("pytorchvideo")  # the ptv-recipe rows
    from rs_video.cli import benchmark_data as cli

    code = cli.main([
        "--data-dir", str(tmp_path), "--make-videos", "2", "--short-side", "48", "--gop", "12",
        "--configs", "ours/pyav", "ptv-recipe/pyav", "--workers", "0", "--clips", "4", "--batch-size", "1",
        "--num-frames", "4", "--sampling-rate", "2", "--crop", "32", "--test-crop", "40", "--modes", "train", "test",
        "--num-sample", "2", "--num-temporal", "2", "--repeats", "2",
    ])
    assert code == 0
    table = capsys.readouterr().out
    # Our loader in both output dtypes (the default), PyTorchVideo always float32, with ratios and load;
    # in train mode 1 clip per video, 2 augmentations of one window and 2 windows; median and range over 2 rounds.
    for row in ("| ours/pyav | float32 | train | 0 | 1x1 |", "| ours/pyav | uint8 | train | 0 | 1x1 |",
                "| ours/pyav | float32 | train | 0 | 1x2 |", "| ours/pyav | uint8 | train | 0 | 2x1 |",
                "| ours/pyav | uint8 | test | 0 | 1x1 |", "| ptv-recipe/pyav | float32 | test | 0 | 1x1 |"):
        assert row in table, row
    assert "ptv-recipe/pyav | uint8" not in table and "| ours/pyav | uint8 | test | 0 | 1x2 |" not in table
    assert "x best PyTorchVideo" in table and "load avg" in table and "clips/s median (range)" in table
    rows = {tuple(c.strip() for c in line.split("|")[1:6]): line.split("|")[6:-1] for line in table.splitlines()[2:]}
    speed, ratio = rows[("ours/pyav", "uint8", "train", "0", "1x2")][0], rows[("ours/pyav", "uint8", "train", "0", "1x2")][-1]
    median, low, high = (float(x) for x in re.fullmatch(r" ([\d.]+) \(([\d.]+)-([\d.]+)\) ", speed).groups())
    assert low <= median <= high
    assert re.fullmatch(r" [\d.]+ \([\d.]+-[\d.]+\) ", ratio)  # the per-round ratio to 1 clip per video
    assert rows[("ours/pyav", "uint8", "train", "0", "1x1")][-1].strip() == "-"


# name -> writer kwargs of a download as people have them (as displayed: 96x64, index-coded upright)
AWKWARD_DOWNLOADS = {
    "phone_rot90.mp4": dict(rotation=90),
    "hevc_10bit_rot270.mp4": dict(codec="libx265", pix_fmt="yuv420p10le", rotation=-90),
    "full_range.mp4": dict(pix_fmt="yuvj420p"),
    "vp9.webm": dict(),
    "av1.mp4": dict(codec=next((c for c in ("libsvtav1", "libaom-av1", "librav1e") if c in av.codecs_available), None)),
}


@pytest.mark.parametrize("backend", ["pyav", "ffmpeg"])
@pytest.mark.parametrize("name", list(AWKWARD_DOWNLOADS))
def test_reencode_bakes_rotation_in_converts_to_8bit_and_reads_hevc_vp9_av1(tmp_path, backend, name):
    from rs_video.benchmark.synthetic import read_frame_index
    from rs_video.data.prepare import reencode_video

    if backend == "ffmpeg" and shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    kwargs = AWKWARD_DOWNLOADS[name]
    if "codec" in kwargs and kwargs["codec"] not in av.codecs_available:
        pytest.skip(f"no {kwargs['codec'] or 'AV1'} encoder in this PyAV build to write the source with")
    src = write_video(tmp_path / name, num_frames=12, width=96, height=64, gop=6, **kwargs)
    dst = tmp_path / "out.mp4"
    reencode_video(str(src), str(dst), short_side=64, backend=backend)
    with av.open(str(dst)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        codec = stream.codec_context
        assert (codec.name, codec.format.name, codec.width, codec.height) == ("h264", "yuv420p", 96, 64)
        assert not container.streams.audio
    # Upright in the stored pixels (the index row reads back) and no display rotation left to apply.
    assert [read_frame_index(f.to_ndarray(format="rgb24")) for f in frames] == list(range(12))
    assert {getattr(f, "rotation", 0) or 0 for f in frames} == {0}
    assert {int(f.color_range) for f in frames} <= {0, 1}  # limited range (1) or unspecified, never full
