"""The baselines' own virtual environments (bench/.venv-<name>), made on first use."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from bench.paths import BENCH, PY, ROOT
from bench.results import log

VENVS: dict[str, list[str]] = {
    # What a user would install for a FastAPI service (uvicorn with uvloop + httptools), with the
    # project's confluent-kafka version so the Kafka client is the same.
    "fastapi": ["fastapi[standard]", "uvicorn[standard]", "fastavro"],
    # Quix Streams pins its own confluent-kafka: hence its own venv.
    "quix": ["quixstreams", "fastavro"],
    # Sampling profiler for `run.py --profile` (a standalone binary; attaches by pid).
    "tools": ["py-spy"],
}


def venv_python(name: str) -> Path:
    """The python of bench/.venv-<name>, created and filled on first use (pip, PyPI)."""
    from importlib.metadata import version

    venv = BENCH / f".venv-{name}"
    py = venv / "bin" / "python"
    reqs = list(VENVS[name])
    if name == "fastapi":
        reqs.append(f"confluent-kafka=={version('confluent-kafka')}")
    stamp = venv / ".bench-requirements"
    if py.exists() and stamp.exists() and stamp.read_text() == "\n".join(reqs):
        return py
    log(f"creating {venv} with {' '.join(reqs)} (once)")
    if not py.exists():
        subprocess.run([PY, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *reqs],
        check=True,
        timeout=900,
    )
    stamp.write_text("\n".join(reqs))
    return py


def venv_versions(py: Path, packages: list[str]) -> dict[str, str]:
    code = (
        "import json,sys\nfrom importlib.metadata import version\nout={}\n"
        "for p in sys.argv[1:]:\n  try: out[p]=version(p)\n  except Exception: out[p]=None\n"
        "print(json.dumps(out))"
    )
    proc = subprocess.run([str(py), "-c", code, *packages], capture_output=True, text=True)
    try:
        versions: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {}
    return versions


def baseline_env() -> dict[str, str]:
    """A baseline venv imports the project's codec and domain code from the source tree."""
    return {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
