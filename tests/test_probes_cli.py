"""`pgolf probe`: exit codes, text and JSON output, bad input."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pgolf.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "probes"


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("PGOLF_CACHE_DIR", str(tmp_path / "cache"))
    return CliRunner()


def test_illegal_scorer_exits_1_with_the_condition_in_the_table(runner: CliRunner) -> None:
    result = runner.invoke(main, ["probe", str(FIXTURES / "subset_renorm_illegal.py")])
    assert result.exit_code == 1, result.output
    assert "PG591 error: C2 probe: probability mass over all 64 symbols" in result.output
    assert "probe verdict: fail" in result.output
    assert "pseudo-random" in result.output


def test_legal_scorer_exits_0_and_json_is_complete(runner: CliRunner) -> None:
    path = FIXTURES / "causal_legal.py"
    result = runner.invoke(main, ["probe", str(path), "--format", "json", "--positions", "8"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["schema"] == "pgolf.probe/1" and data["status"] == "pass"
    by_condition = {r["condition"]: r for r in data["results"]}
    assert set(by_condition) == {"C1", "C2", "C3"}
    assert by_condition["C2"]["measured"]["positions"] == 8
    assert by_condition["C1"]["measured"]["max_abs_deviation"] == 0
    assert data["findings"] == []


def test_warnings_exit_0_unless_fail_on_warning(runner: CliRunner) -> None:
    result = runner.invoke(main, ["probe", str(FIXTURES / "network_attempt.py")])
    assert result.exit_code == 0, result.output
    assert "PG499 warning" in result.output and "blocked:" in result.output
    args = ["probe", str(FIXTURES / "sleep_forever.py"), "--timeout", "3", "--fail-on", "warning"]
    result = runner.invoke(main, args)
    assert result.exit_code == 1
    assert "timed out after 3 s" in result.output


def test_env_option_reaches_the_script(runner: CliRunner, tmp_path: Path) -> None:
    script = tmp_path / "envcheck.py"
    script.write_text(
        "import os\n"
        "def pgolf_scorer(artifact_path=None, **overrides):\n"
        "    raise RuntimeError('PPM_ENABLED=' + os.environ.get('PPM_ENABLED', 'unset'))\n"
    )
    result = runner.invoke(main, ["probe", str(script), "--env", "PPM_ENABLED=1"])
    assert result.exit_code == 1  # the scorer raised: nothing was measured
    assert "PPM_ENABLED=1" in result.output and "probe verdict: error" in result.output


def test_folder_without_train_gpt_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["probe", str(tmp_path)])
    assert result.exit_code == 2
    assert "no train_gpt.py to probe" in result.output


@pytest.mark.parametrize("fixture", ["syntax_error.py", "import_error.py"])
def test_a_script_that_cannot_run_exits_1(runner: CliRunner, fixture: str) -> None:
    result = runner.invoke(main, ["probe", str(FIXTURES / fixture), "--timeout", "60"])
    assert result.exit_code == 1, result.output
    assert "probe verdict: error" in result.output and "Traceback" not in result.output


def test_a_script_without_the_hook_is_skipped_with_exit_0(runner: CliRunner) -> None:
    result = runner.invoke(main, ["probe", str(FIXTURES / "no_hook.py")])
    assert result.exit_code == 0
    assert "probe verdict: skipped" in result.output


def test_a_fifo_is_refused_without_blocking(runner: CliRunner, tmp_path: Path) -> None:
    fifo = tmp_path / "train_gpt.py"
    os.mkfifo(fifo)
    result = runner.invoke(main, ["probe", str(fifo)])
    assert result.exit_code == 2
    assert "train_gpt.py: not a regular file or folder" in result.output


def test_record_folder_is_probed_through_its_train_gpt(runner: CliRunner, tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "noncausal_window_illegal.py", tmp_path / "train_gpt.py")
    result = runner.invoke(main, ["probe", str(tmp_path), "--format", "json"])
    assert result.exit_code == 1
    rules = {f["rule"] for f in json.loads(result.output)["findings"]}
    assert rules == {"PG491"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["probe", "missing.py"], "missing.py: no such file or folder"),
        (["probe", str(FIXTURES / "causal_legal.py"), "--env", "NOEQUALS"], "expected KEY=VALUE"),
        (
            ["probe", str(FIXTURES / "causal_legal.py"), "--artifact", "nope.ptz"],
            "no such artifact",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(runner: CliRunner, args: list[str], message: str) -> None:
    result = runner.invoke(main, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_data_option_with_a_mismatched_vocabulary_exits_2(
    runner: CliRunner, tmp_path: Path
) -> None:
    import numpy as np

    header = np.zeros(256, dtype="<i4")
    header[:3] = (20240520, 1, 100)
    (tmp_path / "fineweb_val_000000.bin").write_bytes(
        header.tobytes() + (np.arange(100) + 900).astype("<u2").tobytes()
    )
    result = runner.invoke(
        main, ["probe", str(FIXTURES / "causal_legal.py"), "--data", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "does not fit the scorer's vocabulary of 64" in result.output
