"""The layers of docs/architecture.md hold: import-linter's contract in pyproject.toml.

CLI above queue, worker and supervisor, above the process tools, above the store, above the
pure rules; a module imports only from layers below its own (so the store and the rules never
import the CLI or the worker). Run as `lint-imports` from the checkout, as a developer would.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_layers_contract_is_kept() -> None:
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_a_module_importing_from_a_layer_above_breaks_the_contract(tmp_path: Path) -> None:
    # The check can fail: with the layers of queue.py and models.py swapped, queue.py's
    # import of models is an import from above, and lint-imports says so.
    config = tmp_path / "swapped.toml"
    config.write_text(
        '[tool.importlinter]\nroot_package = "queuectl"\n\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "swapped"\ntype = "layers"\n'
        'layers = ["queuectl.models", "queuectl.queue"]\n'
    )
    result = lint_imports("--config", str(config))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "queuectl.queue -> queuectl.models" in result.stdout
