"""The CLI surface: every verb has real help, --version matches metadata, errors are one line."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import click
import pytest
from click.testing import CliRunner

from pgolf.cli import main
from pgolf.errors import InputError, NotBuiltYet

VERBS = ["data", "run", "audit", "package", "verify", "compare", "probe"]


def test_top_level_help_lists_every_verb(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    for verb in VERBS:
        assert f"  {verb}" in result.output


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_real_help(runner: CliRunner, verb: str) -> None:
    result = runner.invoke(main, [verb, "--help"])
    assert result.exit_code == 0, result.output
    assert "Not built yet" not in result.output
    assert "Options:" in result.output
    # One example per verb, shown as a pgolf command line.
    assert f"pgolf {verb}" in result.output


def test_version_matches_package_metadata(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"pgolf, version {version('pgolf')}"


def test_not_built_verb_exits_2_with_one_line() -> None:
    @click.command("future")
    def future() -> None:
        raise NotBuiltYet("future")

    result = CliRunner().invoke(future, [])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == ["Error: `pgolf future` is not built yet in this version of pgolf."]
    assert "Traceback" not in result.output


def test_input_error_exits_2_without_traceback() -> None:
    @click.command("bad")
    def bad() -> None:
        raise InputError("data/x.bin: wrong magic 1234 (expected 20240520)")

    result = CliRunner().invoke(bad, [])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "data/x.bin: wrong magic" in result.output


def test_unknown_verb_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(main, ["frobnicate"])
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_console_script_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pgolf.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0
    assert "Parameter Golf" in proc.stdout


HIDE_TORCH = """
import importlib.abc, sys
class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is hidden for this test")
        return None
sys.meta_path.insert(0, _NoTorch())
import audit, audit.model, audit.rules
import pkgutil, importlib
for mod in pkgutil.walk_packages(audit.__path__, "audit."):
    importlib.import_module(mod.name)
from audit.model import REGISTRY
import pgolf.cli
print("ok", len(REGISTRY.rules))
assert "torch" not in sys.modules
"""


def test_audit_imports_without_torch() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", HIDE_TORCH], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")
