"""The sandbox: isolation, no network, time limit, and clean statuses for broken scripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audit.probes import run_probes
from audit.probes.sandbox import ScorerProcess, child_environment

FIXTURES = Path(__file__).parent / "fixtures" / "probes"

INTROSPECT = """
import json, os, sys
FACTS = {"name": __name__}

def pgolf_scorer(artifact_path=None, **overrides):
    facts = dict(FACTS, cwd=os.getcwd(), env=sorted(os.environ), isolated=sys.flags.isolated,
                 artifact=artifact_path, overrides=overrides)
    raise RuntimeError(json.dumps(facts))
"""

CHATTY = """
import sys
import numpy as np
print("hello from import")

class Scorer:
    vocab_size = 16
    level = "token"
    def score(self, tokens, adapt_mask=None):
        print("{\\"ok\\": true, \\"scores\\": []}")
        sys.stdout.write("noise without newline")
        out = np.full(len(tokens), np.log(16.0))
        out[0] = np.nan
        return out

def pgolf_scorer(artifact_path=None, **overrides):
    return Scorer()
"""


def _facts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **kwargs: object) -> dict:
    script = tmp_path / "train_gpt.py"
    script.write_text(INTROSPECT)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("SECRET_TOKEN", "do-not-leak")
    report = run_probes(script, timeout_s=60, **kwargs)  # type: ignore[arg-type]
    message = report.results[0].detail
    assert report.status == "error"
    return json.loads(message[message.index("{") :])


def test_child_is_isolated_in_a_temp_dir_with_a_stripped_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    facts = _facts(tmp_path, monkeypatch, env={"PPM_ENABLED": "1", "http_proxy": "x"})
    assert facts["name"] != "__main__"
    assert facts["isolated"] == 1
    assert Path(facts["cwd"]).name == "work" and Path(facts["cwd"]) != Path.cwd()
    assert "PPM_ENABLED" in facts["env"]
    assert not {"HTTPS_PROXY", "SECRET_TOKEN", "http_proxy"} & set(facts["env"])
    assert facts["artifact"] is None


def test_overrides_and_artifact_reach_pgolf_scorer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifact = tmp_path / "final_model.int8.ptz"
    artifact.write_bytes(b"weights")
    facts = _facts(tmp_path, monkeypatch, overrides={"num_layers": 2}, artifact=artifact)
    assert facts["overrides"] == {"num_layers": 2}
    assert facts["artifact"] == str(artifact.resolve())


def test_folder_target_finds_train_gpt_and_its_artifact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "seed42").mkdir()
    (tmp_path / "seed42" / "final_model.int8.ptz").write_bytes(b"w")
    (tmp_path / "train_gpt.py").write_text(INTROSPECT)
    report = run_probes(tmp_path, timeout_s=60)
    message = report.results[0].detail
    facts = json.loads(message[message.index("{") :])
    assert facts["artifact"].endswith("seed42/final_model.int8.ptz")


def test_folder_target_runs_the_logged_configuration(tmp_path: Path) -> None:
    (tmp_path / "train_gpt.py").write_text(INTROSPECT)
    log = "print('src')\n" + "=" * 100 + "\nppm_enabled:1\nnum_layers:2\ndata_path:/x\n"
    log += "device:cuda\nseed:42\nstep:1/10 train_loss:5.0 train_time:10ms step_avg:10ms\n"
    (tmp_path / "train_seed42.log").write_text(log)
    report = run_probes(tmp_path, timeout_s=60)
    message = report.results[0].detail
    env = json.loads(message[message.index("{") :])["env"]
    assert {"PPM_ENABLED", "NUM_LAYERS"} <= set(env)
    assert not {"DATA_PATH", "DEVICE", "SEED"} & set(env)
    assert any("train_seed42.log" in note for note in report.info["notes"])


def test_network_is_blocked_and_reported() -> None:
    report = run_probes(FIXTURES / "network_attempt.py", timeout_s=60)
    assert report.status == "pass"  # the scorer survives without the network
    assert any("create_connection" in b for b in report.info["blocked"])
    assert any("network socket" in b for b in report.info["blocked"])
    (finding,) = [f for f in report.findings if f.rule == "PG499"]
    assert finding.condition == "R1" and "blocked" in finding.message


def test_a_scorer_that_never_answers_is_killed_at_the_deadline() -> None:
    report = run_probes(FIXTURES / "sleep_forever.py", timeout_s=4)
    assert [r.status for r in report.results] == ["error", "error", "error"]
    assert "timed out after 4 s" in report.results[0].detail
    assert {f.rule for f in report.findings} == {"PG490", "PG590", "PG690"}


def test_syntax_error_is_reported_without_running() -> None:
    report = run_probes(FIXTURES / "syntax_error.py", timeout_s=60)
    assert report.status == "error"
    assert "syntax error in syntax_error.py line 4" in report.results[0].detail


def test_import_failure_names_the_line() -> None:
    report = run_probes(FIXTURES / "import_error.py", timeout_s=60)
    assert report.status == "error"
    assert "RuntimeError (line 3" in report.results[0].detail
    assert "CUDA is required" in report.results[0].detail


def test_script_without_hook_is_skipped_after_import() -> None:
    report = run_probes(FIXTURES / "no_hook.py", timeout_s=60)
    assert [r.status for r in report.results] == ["skipped"] * 3
    assert "defines no pgolf_scorer()" in report.results[0].detail
    assert report.findings == []


def test_script_never_mentioning_the_hook_is_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    script = tmp_path / "train_gpt.py"
    script.write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    report = run_probes(script, timeout_s=60)
    assert report.status == "skipped"
    assert "was not executed" in report.results[0].detail
    assert not marker.exists()


def test_prints_of_the_script_do_not_corrupt_the_channel(tmp_path: Path) -> None:
    script = tmp_path / "chatty.py"
    script.write_text(CHATTY)
    report = run_probes(script, timeout_s=60, slice_len=64, positions=4)
    assert report.status == "pass", report.results


def test_wrong_output_shape_is_a_protocol_error(tmp_path: Path) -> None:
    script = tmp_path / "short.py"
    script.write_text(
        "import numpy as np\n"
        "class S:\n    vocab_size = 8\n    level = 'token'\n"
        "    def score(self, tokens, adapt_mask=None):\n        return np.zeros(3)\n"
        "def pgolf_scorer(artifact_path=None, **overrides):\n    return S()\n"
    )
    report = run_probes(script, timeout_s=60, slice_len=32)
    assert report.status == "error"
    assert "returned shape (3,), expected (32,)" in report.results[0].detail


def test_unusable_scorer_description_is_a_protocol_error(tmp_path: Path) -> None:
    script = tmp_path / "odd.py"
    script.write_text(
        "class S:\n    vocab_size = 1\n    level = 'char'\n"
        "    def score(self, tokens, adapt_mask=None):\n        return None\n"
        "def pgolf_scorer(artifact_path=None, **overrides):\n    return S()\n"
    )
    report = run_probes(script, timeout_s=60)
    assert report.status == "error"
    assert "vocab_size=1, level='char'" in report.results[0].detail


def test_child_environment_drops_proxies() -> None:
    env = child_environment(Path("/tmp/x"), {"ALL_PROXY": "p", "NUM_LAYERS": "2"})
    assert "ALL_PROXY" not in env and env["NUM_LAYERS"] == "2" and env["HOME"] == "/tmp/x"
    assert env["CUDA_VISIBLE_DEVICES"] == ""  # CPU float32 unless asked otherwise
    gpu = ScorerProcess(FIXTURES / "causal_legal.py", env={"CUDA_VISIBLE_DEVICES": "0"})
    assert gpu.memory_mb is None and ScorerProcess(FIXTURES / "causal_legal.py").memory_mb


def test_temp_dir_is_removed_after_close() -> None:
    proc = ScorerProcess(FIXTURES / "causal_legal.py", timeout_s=60)
    with proc:
        assert proc.start()["ok"]
        tmp = proc._tmp
        assert tmp is not None and tmp.exists()
    assert not tmp.exists()


def test_progress_reports_every_request_up_to_the_planned_total() -> None:
    seen: list[tuple[str, int, int]] = []
    report = run_probes(
        FIXTURES / "causal_legal.py", timeout_s=60, progress=lambda *a: seen.append(a)
    )
    assert len(seen) == report.info["score_calls"]
    assert seen[-1][1] == seen[-1][2]  # done == total at the end
    assert {label for label, _, _ in seen} == {"C1", "C2", "C3"}
