"""The layout's rules: which package may import which (pyproject.toml's import-linter contracts)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]


def test_the_import_contracts_are_kept():
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint_imports is None:
        pytest.fail("lint-imports not found: install the test dependencies with pip install -e '.[test]'")
    result = subprocess.run([lint_imports, "--config", str(PROJECT / "pyproject.toml"), "--no-cache"],
                            capture_output=True, text=True, cwd=PROJECT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_book_concepts_load_without_the_machinery():
    code = ("import sys; from sgdlab import TwoLayerNet, SGD, numerical_gradient; "
            "net = TwoLayerNet(4, 3, 2); print(sorted({m.split('.')[1] for m in sys.modules "
            "if m.startswith('sgdlab.')}))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "['errors', 'nn', 'ranges']"


def test_the_package_metadata_uses_no_deprecated_form():
    import tomllib

    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    assert isinstance(project["license"], str)  # an SPDX expression: setuptools deprecates the table
