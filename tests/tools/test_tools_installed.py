"""The tools as an installed interface: one console command per tool (setup.cfg) over ``rs_video.cli``, the
checkout's ``tools/*.py`` as the same commands, no ``sys.path`` edits or warning filters in tools, tests that
import the library and never ``tools``, and shipped configs found by name from any folder."""

from __future__ import annotations

import ast
import configparser
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from rs_image.engine.config import ConfigError, find_config, load_config

ROOT = Path(__file__).resolve().parents[2]


def _console_scripts() -> dict:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    lines = [line.strip() for line in parser["options.entry_points"]["console_scripts"].splitlines() if line.strip()]
    return dict(tuple(part.strip() for part in line.split("=")) for line in lines)


def test_every_tool_is_a_console_command_over_rs_video_cli():
    scripts = _console_scripts()
    modules = sorted(p.stem for p in (ROOT / "rs_video" / "cli").glob("*.py") if not p.stem.startswith("_"))
    assert sorted(target.split(":")[0].rsplit(".", 1)[1] for target in scripts.values()) == modules
    assert all(name.startswith("rs-") for name in scripts)
    for target in scripts.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), target
    # tools/<name>.py is the same command: one per module, importing only it
    assert sorted(p.stem for p in (ROOT / "tools").glob("*.py")) == modules
    for path in (ROOT / "tools").glob("*.py"):
        imports = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert [(n.module, [a.name for a in n.names]) for n in imports] == [(f"rs_video.cli.{path.stem}", ["main"])]


def test_no_tool_edits_sys_path_or_filters_warnings_and_no_test_imports_tools():
    offenders = []
    for path in [*(ROOT / "tools").glob("*.py"), *(ROOT / "rs_video" / "cli").glob("*.py")]:
        text = path.read_text()
        if "sys.path" in text or "filterwarnings" in text:
            offenders.append(str(path.relative_to(ROOT)))
    for path in (ROOT / "tests").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n == "tools" or n.startswith("tools.") for n in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders


@pytest.mark.slow
def test_the_commands_run_from_any_folder_with_a_shipped_config_name(tmp_path):
    """``python -m rs_video.cli.<tool>`` (what the console command runs) in an empty folder: the shipped
    config by name, a one-line error for a config that is nowhere."""
    done = subprocess.run([sys.executable, "-m", "rs_video.cli.train_net", "--cfg", "kinetics/nope.yaml"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("train_net: error: Config file not found: kinetics/nope.yaml")
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "model_report.py"), "--models", "rs3d_50"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "| rs3d_50 | rs_video | train |" in done.stdout
    assert "Warning" not in done.stderr  # no upstream deprecation reaches the user


def test_shipped_configs_by_name_and_a_real_path_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped = find_config("kinetics/rs3d_50.yaml")
    assert Path(shipped).resolve() == (ROOT / "configs" / "kinetics" / "rs3d_50.yaml").resolve()
    assert find_config("configs/kinetics/rs3d_50.yaml") == shipped  # the README's spelling, from any folder
    cfg = load_config("kinetics/rs3d_50.yaml")  # with its _BASE_
    assert (cfg.MODEL.NAME, cfg.DATA.NUM_FRAMES) == ("rs3d_50", 32)
    own = tmp_path / "kinetics" / "rs3d_50.yaml"
    own.parent.mkdir()
    own.write_text("_BASE_: " + str(ROOT / "configs" / "kinetics" / "base_kinetics.yaml") + "\nMODEL:\n  NAME: rs3d_101\n")
    assert find_config("kinetics/rs3d_50.yaml") == "kinetics/rs3d_50.yaml"
    assert load_config("kinetics/rs3d_50.yaml").MODEL.NAME == "rs3d_101"
    with pytest.raises(ConfigError, match=r"Config file not found: kinetics/nope\.yaml \(nor under the shipped configs"):
        find_config("kinetics/nope.yaml")
