"""tools/model_report.py and rs_image.report (catalog, counts, throughput, tables, plot, zoo_page): counts
equal the pinned zoo references, comparison rows use the same counter and inputs, writers parse back, the zoo
page and README tables are current, and the throughput harness really runs what it claims (no timed
assertions)."""

import dataclasses
import json
import os
import resource
import statistics

import pytest
import torch
from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis

from rs_image.errors import UserError
from rs_image.models import Ops, ResNetRS
from rs_image.report import catalog as report_catalog
from rs_image.benchmark import throughput
from rs_image.report import counts, plot, tables, zoo_page
from rs_image.report.counts import count_macs, count_stats
from rs_video.cli import model_report
from rs_video.cli.model_report import ROOT, build_catalog

TINY = dict(stage_widths=(8, 16, 16, 16), stage_depths=(1, 1, 1, 1), stem_width=8, num_classes=10)


def _tiny(dims: int = 2, **kw) -> ResNetRS:
    ops = Ops(dims)
    extra = dict(temporal_kernels_a=(1, 1, 3, 3)) if dims == 3 else {}
    return ResNetRS(ops=ops, **{**TINY, **extra, **kw})


def _tiny_spec(name: str = "tiny", **kw) -> report_catalog.ModelSpec:
    return report_catalog.ModelSpec(name=name, family="test", task="image", build=lambda: _tiny(**kw),
                            input_size=(3, 32, 32), test_input_size=(3, 48, 48))


@pytest.fixture(scope="module")
def catalog():
    return build_catalog()


def _rows_by_model_and_input(specs):
    return {(r["model"], r["input"]): r for r in tables.count_rows(specs)}


@pytest.fixture(scope="module")
def small_rows(catalog):
    """The report for two of our models, counted with fvcore now (no cache); slow_r50 only at the
    PyTorchVideo zoo's test input (8x256x256)."""
    return _rows_by_model_and_input([catalog.spec("resnetrs50"), catalog.spec("slow_r50").with_overrides(size=256)])


@pytest.fixture(scope="module")
def ptv_rows(catalog):
    """PyTorchVideo's slow_r50 at the same input as ours in ``small_rows``."""
    pytest.importorskip("pytorchvideo.models.hub")
    return _rows_by_model_and_input([catalog.spec("ptv:slow_r50").with_overrides(size=256)])


@pytest.fixture(scope="module")
def timm_rows(catalog):
    pytest.importorskip("timm")
    return _rows_by_model_and_input([catalog.spec("timm:resnetrs50")])


@pytest.fixture(scope="module")
def page_specs(catalog):
    video = catalog.resolve(["@video"])
    image = catalog.resolve(catalog.sources[0].variant_names())
    return video, image


# --------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_pinned_references(small_rows):
    slow_test = small_rows[("slow_r50", "train=test")]
    assert slow_test["shape"] == "3x8x256x256"
    assert slow_test["gmacs"] == pytest.approx(54.52, abs=0.005)  # PyTorchVideo zoo, conv-only
    assert slow_test["params_m"] == pytest.approx(32.45, abs=0.005)
    # BN is stated, never mixed in: fvcore's total is 0.23 G more (reference §4.3).
    assert slow_test["bn_gmacs"] == pytest.approx(0.232, abs=0.001)
    assert slow_test["gmacs_with_bn"] == pytest.approx(slow_test["gmacs"] + slow_test["bn_gmacs"], abs=2e-4)
    assert slow_test["activations_m"] == pytest.approx(116.13, abs=0.01)
    assert slow_test["views"] == "10x3" and slow_test["gmacs_x_views"] == pytest.approx(30 * slow_test["gmacs"])
    assert slow_test["top1"] == 74.58 and "PyTorchVideo" in slow_test["top1_source"]

    rs50 = small_rows[("resnetrs50", "train=test")]
    assert rs50["shape"] == "3x160x160"
    assert rs50["gmacs"] == pytest.approx(2.28, abs=0.005) and rs50["params_m"] == pytest.approx(35.69, abs=0.005)
    assert rs50["top1"] == 78.8


def test_pytorchvideo_rows_same_counter_same_inputs(small_rows, ptv_rows):
    ours, ptv = small_rows[("slow_r50", "train=test")], ptv_rows[("ptv:slow_r50", "train=test")]
    assert ptv["shape"] == ours["shape"] and ptv["family"] == "pytorchvideo"
    assert ptv["gmacs"] == pytest.approx(ours["gmacs"], abs=1e-3)
    assert ptv["params_m"] == ours["params_m"]
    # One architecture with one reported number (PyTorchVideo's zoo): plotted once, under our name.
    points = plot.plot_points(list(small_rows.values()) + list(ptv_rows.values()))
    assert [p.label for p in points] == ["slow_r50"]


def test_timm_rows_same_counter_same_inputs(small_rows, timm_rows):
    rs50, timm50 = small_rows[("resnetrs50", "train=test")], timm_rows[("timm:resnetrs50", "train=test")]
    assert timm50["shape"] == rs50["shape"] and timm50["family"] == "timm"  # at our input sizes, not timm's own
    assert (timm50["gmacs"], timm50["params_m"]) == (rs50["gmacs"], rs50["params_m"])


def test_pinned_counts_agree_with_fresh_counts(small_rows):
    cache = counts.CountsCache(model_report.DEFAULT_CACHE)
    for key, row in [("slow_r50|3x8x256x256", small_rows[("slow_r50", "train=test")]),
                     ("resnetrs50.i160|3x160x160", small_rows[("resnetrs50", "train=test")])]:
        entry = cache.entries[key]
        assert (entry["conv"] + entry["linear"]) / 1e9 == pytest.approx(row["gmacs"], abs=1e-4), key
        assert entry["batch_norm"] / 1e9 == pytest.approx(row["bn_gmacs"], abs=1e-4), key
        assert entry["params"] / 1e6 == pytest.approx(row["params_m"], abs=1e-4), key


def test_train_and_test_rows():
    spec = dataclasses.replace(_tiny_spec(), task="video", test_views=(2, 3), top1=50.0, top1_source="made up")
    train, test = tables.count_rows([spec])
    assert (train["input"], train["shape"], train["views"]) == ("train", "3x32x32", "1x1")
    assert (test["input"], test["shape"], test["views"]) == ("test", "3x48x48", "2x3")
    for row, size in ((train, 32), (test, 48)):  # each row counts its own input
        stats = count_stats(_tiny(), torch.zeros(1, 3, size, size))
        assert row["gmacs"] == round(stats["conv_linear"] / 1e9, 4)
        assert row["bn_gmacs"] == round(stats["batch_norm"] / 1e9, 4)
        assert row["activations_m"] == round(stats["activations"] / 1e6, 4)
    assert train["gmacs_x_views"] == train["gmacs"] and test["gmacs_x_views"] == pytest.approx(6 * test["gmacs"], abs=1e-3)
    assert train["params_m"] == test["params_m"] == round(sum(p.numel() for p in _tiny().parameters()) / 1e6, 4)
    assert test["top1_source"] == "made up"


def test_count_stats_is_fvcore_in_one_trace():
    model, x = _tiny(3).eval(), torch.randn(1, 3, 4, 32, 32)  # fvcore counts BN differently in train mode
    stats = count_stats(model, x)
    flops, acts = FlopCountAnalysis(model, (x,)), ActivationCountAnalysis(model, (x,))
    for a in (flops, acts):
        a.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    assert stats["by_operator"] == dict(flops.by_operator()) and stats["total"] == flops.total()
    assert stats["activations_by_operator"] == dict(acts.by_operator()) and stats["activations"] == acts.total()
    assert stats["conv_linear"] == stats["total"] - stats["batch_norm"] - stats["other"]
    assert {k: stats[k] for k in count_macs(model, x)} == count_macs(model, x)


def test_writers_parse_back(small_rows, tmp_path):
    rows = list(small_rows.values())
    res = throughput.measure_throughput(lambda: _tiny(), (3, 32, 32), option="eager", warmup=0, repeats=1,
                                        name="tiny")
    timed = tables.throughput_rows([res])
    back = tables.read_csv_rows(tables.rows_to_csv(rows + timed))
    assert len(back) == len(rows) + 1

    def norm(v):
        return None if v == "" else v

    for row, parsed in zip(rows + timed, back):
        for k, v in row.items():
            assert norm(v) == parsed[k] or (isinstance(v, float) and parsed[k] == pytest.approx(v)), (k, v, parsed[k])
    data = json.loads(tables.rows_to_json(rows, timed, {"torch": torch.__version__}))
    assert data["counts"] == rows and data["throughput"][0]["model"] == "tiny"
    assert "1 fused multiply-add = 1 FLOP" in data["convention"]
    md = tables.rows_to_markdown(rows, timed, {"torch": torch.__version__})
    assert "| slow_r50 | rs_video | train=test | 3x8x256x256 | 8x8 | 32.45 | 54.52 |" in md
    assert counts.CONVENTION in md and "not measured here" in md and "Machine: torch" in md


@pytest.mark.slow
def test_cli_json_csv_and_throughput(tmp_path):
    out = tmp_path / "r.json"
    args = ["--models", "resnetrs50", "--size", "64", "--no-cache", "--format", "json", "--output", str(out), "--throughput",
            "--options", "eager", "channels_last", "--modes", "inference", "--warmup", "0", "--repeats", "1",
            "--batch-size", "1", "--device", "cpu"]
    assert model_report.main(args) == 0
    data = json.loads(out.read_text())
    (count_row,) = data["counts"]
    assert count_row["shape"] == "3x64x64" and count_row["gmacs"] == pytest.approx(2.28 * 64**2 / 160**2, rel=0.05)
    assert [r["option"] for r in data["throughput"]] == ["eager", "channels_last"]
    eager = data["throughput"][0]
    assert not eager["error"] and eager["speedup_vs_eager"] == 1.0
    # Every figure of the row follows from its one timed step (the report rounds ms and clips/s to 3 decimals,
    # TFLOP/s to 4 digits; hence the tolerances).
    (step_ms,) = eager["step_times_ms"]
    assert eager["median_ms"] == step_ms and eager["gmacs_per_clip"] == count_row["gmacs"]
    assert eager["clips_per_s"] == pytest.approx(1e3 / step_ms, abs=1e-3)
    assert eager["ms_per_gmac"] == pytest.approx(step_ms / count_row["gmacs"], abs=2e-3)
    assert eager["achieved_tflops"] == pytest.approx(2 * count_row["gmacs"] / step_ms, rel=1e-3)
    assert eager["mfu"] is None and eager["peak_tflops"] is None  # no bf16 peak known for a CPU
    assert data["machine"]["torch"] == torch.__version__ and "load_average" in data["machine"]

    csv_out = tmp_path / "r.csv"
    assert model_report.main(["--models", "resnetrs50", "--size", "96", "--no-cache", "--format", "csv",
                              "--output", str(csv_out)]) == 0
    (row,) = tables.read_csv_rows(csv_out.read_text())
    assert row["shape"] == "3x96x96" and count_row["gmacs"] < row["gmacs"] < 2.28


def test_cli_rejects_unknown_models(catalog):
    with pytest.raises(KeyError, match="did you mean rs3d_50"):
        catalog.resolve(["rs3d_5O"])
    with pytest.raises(KeyError, match="unknown model group"):
        catalog.resolve(["@nope"])
    with pytest.raises(ValueError, match="CLIPSxCROPS"):
        report_catalog.parse_views("10by3")
    # the action detectors are registered models, but their forward needs boxes: refused by name, not listed
    with pytest.raises(UserError, match="slow_r50_detection is an action detector"):
        catalog.resolve(["slow_r50_detection"])
    video = catalog.resolve(["@video"])
    assert "rs3d_50" in {s.name for s in video} and not any(s.name.endswith("_detection") for s in video)


def test_overrides_and_groups(catalog):
    spec = catalog.spec("rs3d_50").with_overrides(frames=8, size=160, test_size=192, views=(4, 1))
    assert spec.input_size == (3, 8, 160, 160) and spec.test_input_size == (3, 8, 192, 192)
    assert spec.test_views == (4, 1)
    image = catalog.spec("resnetrs350.i320").with_overrides(frames=8, views=(4, 1))
    assert image.input_size == (3, 320, 320) and image.test_views == (1, 1)
    assert image.cfg["dropout"] == 0.4
    groups = catalog.groups()
    assert "ptv:x3d_m" in groups["@anchors"] and "tv:r3d_18" in groups["@tv"] and "rs3d_50" in groups["@video"]
    assert catalog.expand(["slow_r50", "@ptv"])[:2] == ["slow_r50", "ptv:slow_r50"]


def test_pytorchvideo_rows_give_logits_at_any_size(catalog):
    pytest.importorskip("pytorchvideo.models.hub")
    model = catalog.spec("ptv:r2plus1d_r50").build().train()
    out = model(torch.randn(2, 3, 4, 64, 64))  # far below the native 16x224 head kernel
    assert out.shape == (2, 400)
    assert not torch.allclose(out.sum(1), torch.ones(2))  # the hub's softmax head is gone


def test_cache_uses_only_matching_architectures(tmp_path):
    path = str(tmp_path / "counts.json")
    cache = counts.CountsCache(path)
    spec = _tiny_spec()
    (first,) = counts.count_spec(spec, [(3, 32, 32)], cache=cache)
    cache.save()
    reloaded = counts.CountsCache(path)
    assert counts.count_spec(_tiny_spec(), [(3, 32, 32)], cache=reloaded, allow_compute=False) == [first]
    changed = _tiny_spec(se_ratio=0.0)  # same name, other architecture
    with pytest.raises(counts.StaleCountsError, match="tools/model_report.py --zoo"):
        counts.count_spec(changed, [(3, 32, 32)], cache=reloaded, allow_compute=False)
    (recount,) = counts.count_spec(changed, [(3, 32, 32)], cache=reloaded)
    assert recount["params"] < first["params"]
    with pytest.raises(counts.StaleCountsError):  # another input shape is another entry
        counts.count_spec(_tiny_spec(), [(3, 64, 64)], cache=reloaded, allow_compute=False)
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="bad.json"):
        counts.CountsCache(str(tmp_path / "bad.json"))


@pytest.mark.slow
def test_zoo_page_is_current(page_specs):
    video, image = page_specs
    cache = counts.CountsCache(model_report.DEFAULT_CACHE)
    text = zoo_page.zoo_markdown(video, image, root=ROOT, cache=cache, allow_compute=False)
    with open(os.path.join(ROOT, "MODEL_ZOO.md")) as f:
        assert f.read() == text, f"MODEL_ZOO.md is stale: run `{zoo_page.ZOO_COMMAND}`"
    assert "| `slow_r50` | Slow R50 (PyTorchVideo arch.) | 8x8 | 8x224x224 | 8x256x256 | 32.45 | 54.52 x 30 |" in text
    assert "| `resnetrs50.i160` | 160x160 | 35.69 | 2.28 | 4.6 |" in text
    assert "| `resnetrs420.i320` | 320x320 | 191.89 | 63.94 | 127.9 |" in text  # reference §1.10
    assert "78.20 [" in text and "TF Model Garden" in text


def test_model_table_is_current(page_specs):
    video, image = page_specs
    cache = counts.CountsCache(model_report.DEFAULT_CACHE)
    text = zoo_page.model_table_markdown(video, image, cache=cache, allow_compute=False)
    with open(os.path.join(ROOT, "docs", "model_table.md")) as f:
        assert f.read() == text, f"docs/model_table.md is stale: run `{zoo_page.ZOO_COMMAND}`"
    assert "| `resnetrs50.i160` | 160x160 | 35.69 | 2.28 | 78.8 (paper) |" in text
    assert all(f"| `{s.name}` |" in text for s in video)


def test_weights_and_config_columns(page_specs, tmp_path):
    video, image = page_specs
    by_name = {s.name: s for s in video + image}
    assert "SLOW_8x8_R50.pyth" in zoo_page.weights_status(by_name["slow_r50"])
    assert "inflate `resnetrs50`" in zoo_page.weights_status(by_name["rs3d_50"])
    assert "resnet-rs-350-i320.h5" in zoo_page.weights_status(by_name["resnetrs350.i320"])
    assert "timm" not in zoo_page.weights_status(by_name["resnetrs350.i320"])  # timm ported only i256
    assert zoo_page.config_path(by_name["rs3d_50"], str(tmp_path)) is None
    (tmp_path / "configs" / "kinetics").mkdir(parents=True)
    (tmp_path / "configs" / "kinetics" / "rs3d_50.yaml").write_text("MODEL:\n  NAME: rs3d_50\n")
    assert zoo_page.config_path(by_name["rs3d_50"], str(tmp_path)) == "configs/kinetics/rs3d_50.yaml"


def test_plot(small_rows, tmp_path):
    points = plot.plot_points(list(small_rows.values()))  # resnetrs50 is an image model: not plotted
    assert [p.label for p in points] == ["slow_r50"] and points[0].gmacs_x_views == pytest.approx(30 * 54.52, abs=0.2)
    path = plot.plot_accuracy_vs_flops(points, str(tmp_path / "k400.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="nothing to plot"):
        plot.plot_accuracy_vs_flops([], str(tmp_path / "empty.png"))


# --------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_train_step_updates_weights_and_inference_does_not():
    built = []

    def build():
        m = _tiny()
        built.append((m, {k: v.clone() for k, v in m.state_dict().items()}))
        return m

    res = throughput.measure_throughput(build, (3, 32, 32), mode="train", batch_size=2, warmup=1, repeats=2)
    assert not res.error and res.repeats == 2 and len(res.step_times_ms) == len(res.cpu_times_ms) == 2
    # The summary is the recorded steps': median, extremes, and batch / median for the throughput.
    assert res.median_ms == statistics.median(res.step_times_ms) and res.cpu_ms == statistics.median(res.cpu_times_ms)
    assert (res.min_ms, res.max_ms) == (min(res.step_times_ms), max(res.step_times_ms))
    assert res.clips_per_s == 2 / (res.median_ms / 1e3)
    model, before = built[-1]
    assert model.training and not torch.equal(model.head.fc.weight, before["head.fc.weight"])
    # In MiB, and at most the peak the process has now (the peak only grows until the next reset); a unit slip
    # (KiB or bytes) would exceed it.
    if res.peak_mem_kind == "cpu_peak_rss":
        with open("/proc/self/status") as f:
            peak_now_kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    else:
        assert res.peak_mem_kind == "cpu_peak_rss_lifetime"
        peak_now_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert 0 < res.peak_mem_mib <= peak_now_kib / 1024

    res = throughput.measure_throughput(build, (3, 32, 32), mode="inference", option="bf16", warmup=0, repeats=1)
    model, before = built[-1]
    assert not res.error and not model.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.slow
def test_channels_last_3d_and_errors_are_reported():
    built = []
    res = throughput.measure_throughput(lambda: built.append(_tiny(3)) or built[-1], (3, 4, 32, 32),
                                       option="channels_last+bf16", warmup=0, repeats=1)
    assert not res.error and res.option == "channels_last+bf16"
    assert built[0].stem.conv1.weight.is_contiguous(memory_format=torch.channels_last_3d)

    def broken():
        raise RuntimeError("out of memory\nmore")

    res = throughput.measure_throughput(broken, (3, 32, 32), warmup=0, repeats=1)
    assert res.error == "RuntimeError: out of memory"
    with pytest.raises(ValueError, match="unknown benchmark option"):
        throughput.parse_option("fast")
    with pytest.raises(ValueError, match="combines with nothing"):
        throughput.parse_option("eager+bf16")
    assert throughput.parse_option("compile+channels_last").name == "channels_last+compile"


def test_rounds_are_pooled():
    def result(option, times, load, error=""):
        return throughput.ThroughputResult(
            model="m", mode="train", option=option, device="cpu", batch_size=2, input_shape="3x8x8",
            median_ms=float("nan"), min_ms=0.0, max_ms=0.0, repeats=len(times), warmup=1, clips_per_s=0.0,
            peak_mem_mib=float(len(times)), peak_mem_kind="cpu_peak_rss", load_1min=load, error=error,
            step_times_ms=times, cpu_times_ms=[t / 2 for t in times])

    merged = throughput.merge_rounds([result("eager", [10.0, 30.0], 1.0), result("bf16", [5.0], 2.0),
                                     result("eager", [20.0, 40.0, 50.0], 3.0), result("bf16", [], 2.0, "boom")])
    eager, bf16 = merged
    assert eager.step_times_ms == [10.0, 30.0, 20.0, 40.0, 50.0] and eager.median_ms == 30.0 and eager.repeats == 5
    assert eager.clips_per_s == pytest.approx(2 / 0.030) and eager.cpu_ms == 15.0
    assert eager.peak_mem_mib == 3.0 and eager.load_1min == 2.0 and eager.error == ""
    assert bf16.median_ms == 5.0 and bf16.error == "boom"  # a failed round is reported, the good one kept
    rows = tables.throughput_rows(merged)
    assert rows[1]["speedup_vs_eager"] == 6.0


def test_plot_pairs_a_top1_only_with_the_input_it_was_reported_at(catalog, monkeypatch, tmp_path, capsys):
    # slow_r50's 74.58 is for 8-frame clips at 256 px, 10x3 views; rs3d_50's 78.2 for 32x256, 10x3.
    at_32 = [catalog.spec(n).with_overrides(frames=32) for n in ("slow_r50", "rs3d_50")]
    assert at_32[0].top1_input_size == (3, 8, 256, 256) and at_32[0].top1_views == (10, 3)
    cache = counts.CountsCache(model_report.DEFAULT_CACHE)
    rows = tables.count_rows(at_32, cache=cache, allow_compute=False)
    test_rows = {r["model"]: r for r in rows if r["input"] == "test"}
    assert test_rows["slow_r50"]["shape"] == "3x32x256x256" and test_rows["slow_r50"]["top1_input"] == "3x8x256x256"
    points = plot.plot_points(rows)
    assert [(p.label, p.top1) for p in points] == [("rs3d_50", 78.2)]
    assert points[0].gmacs_x_views == test_rows["rs3d_50"]["gmacs_x_views"]
    (left_out,) = plot.top1_input_mismatches(rows)
    assert left_out.startswith("slow_r50: top-1 74.58 was reported at 3x8x256x256, 10x3 views; this row is "
                               "3x32x256x256, 10x3 views")
    # Other views are another protocol too; a row that does not say where its top-1 was reported is left out.
    four_views = tables.count_rows([catalog.spec("rs3d_50").with_overrides(views=(4, 1))], cache=cache,
                                   allow_compute=False)
    assert plot.plot_points(four_views) == [] and "10x3 views; this row is 3x32x256x256, 4x1" in \
        plot.top1_input_mismatches(four_views)[0]
    unknown = [dict(test_rows["rs3d_50"], top1_input=None, top1_views=None)]
    assert plot.plot_points(unknown) == [] and "an unknown input" in plot.top1_input_mismatches(unknown)[0]

    # The CLI plots what applies, says what it left out, and refuses when nothing applies.
    plotted = []
    monkeypatch.setattr(plot, "plot_accuracy_vs_flops", lambda pts, path: plotted.append(list(pts)) or path)
    common = ["--format", "csv", "--output", str(tmp_path / "r.csv"), "--plot", str(tmp_path / "k.png")]
    assert model_report.main(["--models", "slow_r50", "rs3d_50", "--frames", "32", *common]) == 0
    assert [[p.label for p in pts] for pts in plotted] == [["rs3d_50"]]
    assert "--plot leaves out slow_r50: top-1 74.58 was reported at 3x8x256x256" in capsys.readouterr().err
    assert model_report.main(["--models", "slow_r50", "--frames", "32", *common]) == 2
    err = capsys.readouterr().err
    assert "--plot refused" in err and "slow_r50: top-1 74.58 was reported at 3x8x256x256" in err
    assert len(plotted) == 1
    assert model_report.main(["--models", "slow_r50", *common]) == 0  # its own input: plotted
    assert [p.label for p in plotted[-1]] == ["slow_r50"]


def test_achieved_tflops_and_mfu_columns():
    def result(mode, ms):
        return throughput.ThroughputResult(
            model="m", mode=mode, option="bf16", device="cuda:0", batch_size=4, input_shape="3x8x32x32",
            median_ms=ms, min_ms=ms, max_ms=ms, repeats=1, warmup=0, clips_per_s=4 / (ms / 1e3), peak_mem_mib=1.0,
            peak_mem_kind="cuda_max_allocated", step_times_ms=[ms])

    count_rows = [dict(model="m", shape="3x8x32x32", gmacs=50.0)]
    inference, train = tables.throughput_rows([result("inference", 10.0), result("train", 40.0)], count_rows,
                                              peak_tflops=989.4)
    # 10 ms / (4 clips x 50 GMACs) = 0.05 ms per GMAC; 2 x 50 GMACs x 400 clips/s = 40 TFLOP/s;
    # training 40 / (4 x 50) = 0.2 ms per GMAC and 6 x 50 x 100 = 30 TFLOP/s.
    assert (inference["ms_per_gmac"], train["ms_per_gmac"]) == (0.05, 0.2)
    assert inference["achieved_tflops"] == 40.0 and inference["mfu"] == 0.04043  # 40 / 989.4, 4 digits
    assert train["achieved_tflops"] == 30.0 and train["mfu"] == 0.03032
    (no_peak,) = tables.throughput_rows([result("train", 40.0)], count_rows)
    assert no_peak["achieved_tflops"] == 30.0 and no_peak["mfu"] is None
    md = tables.rows_to_markdown([], [inference, no_peak])
    assert "| TFLOP/s | MFU |" in md and "| 40.00 | 4.0% |" in md and "| 30.00 | n/a |" in md
    assert "dense bf16 peak of 989.4 TFLOP/s" in md
    assert tables.rows_to_markdown([], [no_peak]).count("no bf16 peak known") == 1
    names = {"NVIDIA H100 80GB HBM3": 989.4, "NVIDIA H100 PCIe": 756.5, "NVIDIA H200": 989.4,
             "NVIDIA H200 NVL": 835.5, "NVIDIA A100-SXM4-80GB": 312.0, "NVIDIA L4": 121.0, "NVIDIA L40S": 362.05,
             "NVIDIA A10": 125.0, "NVIDIA A10G": None, "NVIDIA GeForce RTX 4090": None}
    assert {n: throughput.peak_bf16_tflops(n) for n in names} == names
