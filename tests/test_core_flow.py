"""tests/test_core_flow.sh (SPEC §10), run as a user runs it: with the installed `queuectl`
console script first on PATH, and this checkout's code behind it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

SCRIPT = ROOT / "tests" / "test_core_flow.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def environment(bin_dir: Path, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECTL_")}
    env.update(
        PATH=str(bin_dir) + os.pathsep + env.get("PATH", ""),
        # Ahead of the installed package (an editable install of another checkout, say):
        # the console script then runs this checkout's code, the code under test.
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        TMPDIR=str(tmp_path),
        XDG_CONFIG_HOME=str(tmp_path / "xdg-config"),
    )
    return env


def queuectl_bin(tmp_path: Path) -> Path:
    """The folder of the `queuectl` to put first on PATH: the console script installed
    beside this Python (a venv's bin, as in CI), else a stand-in that runs
    `python -m queuectl` with this Python."""
    here = Path(sys.executable).parent
    if (here / "queuectl").is_file():
        return here
    stand_in = tmp_path / "bin"
    stand_in.mkdir()
    (stand_in / "queuectl").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m queuectl "$@"\n')
    (stand_in / "queuectl").chmod(0o755)
    return stand_in


def test_the_core_flow_script_passes(tmp_path):
    bin_dir = queuectl_bin(tmp_path)
    env = environment(bin_dir, tmp_path)
    found = shutil.which("queuectl", path=env["PATH"])
    assert found == str(bin_dir / "queuectl")
    # The interpreter behind that script imports the package from this checkout.
    where = subprocess.run(
        [sys.executable, "-c", "import queuectl; print(queuectl.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    ).stdout.strip()
    assert Path(where).parent.parent == ROOT
    result = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert result.stdout.splitlines()[-1] == "core flow: ok"
    # Its store was its own, in a mktemp folder that is gone now.
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("queuectl-core")] == []


def test_the_script_stops_at_the_first_failure_and_cleans_up(tmp_path):
    broken = tmp_path / "broken-bin"
    broken.mkdir()
    (broken / "queuectl").write_text("#!/bin/sh\necho 'store unusable' >&2\nexit 1\n")
    (broken / "queuectl").chmod(0o755)
    env = environment(broken, tmp_path)
    result = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 1
    assert "core flow FAILED: config set backoff-base" in result.stderr
    assert "core flow: ok" not in result.stdout
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("queuectl-core")] == []
