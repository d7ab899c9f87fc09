"""Start-up cost of the command line, guarded without timing: what `--help` and `stats` import.

Every command pays for what the CLI imports before it runs. Wall time depends on the machine, so this
checks the cause instead: a fresh interpreter runs the command (Typer's CliRunner) and reports the
modules it loaded. `--help` needs none of the engine; `stats` opens a library (catalog, FAISS index)
but needs no model runtime, no image library, no web stack and no migration tool.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from facesearch import Library
from tests.conftest import GALLERY_PROBE
from tests.helpers import copy_library

# Heavy or optional packages: importing any of them costs from tens of milliseconds to seconds.
MODEL_AND_WEB = ("onnxruntime", "onnx", "dlib", "torch", "PIL", "matplotlib", "fastapi", "uvicorn", "httpx")
OPTIONAL = ("alembic", "pymilvus", "ray")
# `--help` does not open a library: no numpy, no database layer, no vector index, no facesearch engine.
ENGINE = ("numpy", "sqlalchemy", "faiss", "facesearch.library", "facesearch.config", "facesearch.governance")

RUN_AND_REPORT = """
import json, sys
from typer.testing import CliRunner
from facesearch.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
loaded = sorted({name.split(".")[0] for name in sys.modules} | {n for n in sys.modules if n.startswith("facesearch")})
print(json.dumps({"exit_code": result.exit_code, "output": result.output, "modules": loaded}))
"""


def run_cli(*args: str) -> tuple[str, set[str]]:
    """Run the command in a fresh interpreter; its output and the modules (top level + facesearch.*) it loaded."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_REPORT, *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["exit_code"] == 0, report["output"]
    return report["output"], set(report["modules"])


def test_help_imports_no_engine() -> None:
    output, modules = run_cli("--help")
    assert "stats" in output and "calibrate" in output and "optout" in output  # every group registered
    assert modules.isdisjoint(MODEL_AND_WEB + OPTIONAL + ENGINE), sorted(modules & {*MODEL_AND_WEB, *OPTIONAL, *ENGINE})


@pytest.mark.parametrize("command", [("stats",), ("stats", "--json")])
def test_stats_imports_no_model_runtime(tmp_path: Path, command: tuple[str, ...]) -> None:
    folder = tmp_path / "lib"
    Library.open(folder, jitter=0).close()  # a real, empty library: catalog stamped at head, FAISS index
    output, modules = run_cli(*command, "-l", str(folder))
    assert "0 faces" in output or json.loads(output)["faces"] == 0  # stats really opened the library
    assert "facesearch.library" in modules
    assert modules.isdisjoint(MODEL_AND_WEB + OPTIONAL), sorted(modules & {*MODEL_AND_WEB, *OPTIONAL})


def test_a_search_with_converted_models_imports_no_converter(
    example_gallery: Path, shared_data: Path, tmp_path: Path
) -> None:
    """Issue 11 (the suite's speed, every command and worker process): a search builds the default pipeline (HOG,
    the CNN fallback, the ResNet) from models converted before, so it needs ONNX Runtime but never the converters
    and the ``onnx`` package they import (~0.6 s of CPU in every ingest worker, command and server)."""
    folder = copy_library(example_gallery, tmp_path / "lib")
    probe = shared_data / "face_recognition_examples" / GALLERY_PROBE
    output, modules = run_cli(
        "search", str(probe), "--case", "T-1", "--purpose", "check what a search imports", "--json", "-l", str(folder)
    )
    assert json.loads(output)["faces"][0]["candidates"]  # it really embedded the probe and searched
    assert "onnxruntime" in modules and "facesearch.models.detect.cnn" in modules
    assert "onnx" not in modules and "facesearch.models.convert.mmod_onnx" not in modules
