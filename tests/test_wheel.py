"""Packaging: the built wheel works on its own, outside the checkout.

Builds the wheel from a copy of the files a build needs, installs it (with its dependencies,
from the package index or pip's cache) into a fresh virtual environment without the system's
site-packages, and runs the codec and the CLI from a directory that is not the checkout. It
fails when package data (the Avro schemas, the local broker's files) or a dependency is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "tests" / "data" / "customer-deleted.webhook.json"

pytestmark = [pytest.mark.wheel, pytest.mark.timeout(900)]

# Encodes the example webhook and decodes it back, with the installed package only; the local
# broker's Maven and logging files must be there too.
CODEC_CHECK = """
import json, sys
from importlib.resources import files
import streams
for name in ("pom.xml", "log4j2.properties"):
    assert files("streams.dev").joinpath(name).is_file(), name
from streams.models.customer_deleted import parse_webhook
from streams.models.serializers.avro import get_codec

codec = get_codec()
datum = parse_webhook(json.load(open(sys.argv[1], encoding="utf-8")))
data = codec.encode("CustomerDeleted", datum)
assert data[:2] == b"\\xc3\\x01", data[:10]
name, back = codec.decode(data)
assert (name, back) == ("CustomerDeleted", datum)
print(streams.__file__)
print(len(data), sorted(codec.schema_names), len(codec.history))
"""


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path: Path) -> None:
    # Nothing of the checkout or of this test run's environment may leak into the new venv.
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env["PYTHONNOUSERSITE"] = "1"

    # A copy of what a build reads, so building leaves no build/ or egg-info in the checkout.
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copy(ROOT / "README.md", src)
    shutil.copytree(ROOT / "streams", src / "streams", ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "wheel", "-q", "--no-deps", "-w", str(dist), str(src)], tmp_path, env, 300)
    wheels = list(dist.glob("voucherify_streams-*.whl"))
    assert len(wheels) == 1, wheels

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, env, 120)
    py = venv / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "-q", str(wheels[0])], tmp_path, env, 600)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = _run([str(py), "-c", CODEC_CHECK, str(EXAMPLE)], elsewhere, env, 120)
    installed = Path(out.splitlines()[0])
    assert installed.is_relative_to(venv), f"imported {installed}, not the installed package"
    assert not installed.is_relative_to(ROOT)

    help_text = _run([str(venv / "bin" / "voucherify-streams"), "--help"], elsewhere, env, 120)
    for command in ("kafka", "bridge", "worker", "demo", "replay"):
        assert command in help_text
