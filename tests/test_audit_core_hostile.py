"""Hostile folders give findings or one clear error, never a crash."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from audit.engine import audit_folder, audit_source
from audit.report import to_json, to_markdown, to_sarif
from pgolf.cli import main
from pgolf.errors import InputError

CLEAN = Path(__file__).parent / "fixtures" / "audit" / "clean_record"
SCHEMA = json.loads(
    (Path(__file__).parents[1] / "pgolf" / "schemas" / "audit-report.schema.json").read_text()
)


@pytest.fixture
def record(tmp_path: Path) -> Path:
    dest = tmp_path / "record"
    shutil.copytree(CLEAN, dest)
    return dest


def _all_outputs_valid(report) -> None:
    data = to_json(report)
    jsonschema.validate(data, SCHEMA)
    json.dumps(data, allow_nan=False)
    json.dumps(to_sarif([report]), allow_nan=False)
    assert to_markdown(report).rstrip().splitlines()[-1].startswith("Verdict: ")


def _ids(report) -> set[str]:
    return {f.rule for f in report.findings}


def test_missing_folder_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such folder"):
        audit_folder(tmp_path / "nope")
    result = CliRunner().invoke(main, ["audit", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "no such folder" in result.output and "Traceback" not in result.output


def test_file_instead_of_folder(tmp_path: Path) -> None:
    f = tmp_path / "x.py"
    f.write_text("x = 1\n")
    result = CliRunner().invoke(main, ["audit", str(f)])
    assert result.exit_code == 2 and "not a folder" in result.output


def test_empty_folder(tmp_path: Path) -> None:
    report = audit_folder(tmp_path)
    assert report.verdict == "fail"
    missing = [f.message for f in report.findings if f.rule == "PG101"]
    assert any("train_gpt.py" in m for m in missing)
    assert any("training log" in m for m in missing)
    assert report.summary["n_runs"] == 0 and report.summary["val_bpb_mean"] is None
    _all_outputs_valid(report)


def test_invalid_json_submission(record: Path) -> None:
    (record / "submission.json").write_text('{"author": "x", "val_bpb": 1.0,,}')
    report = audit_folder(record)
    bad = [f for f in report.findings if f.rule == "PG102"]
    assert bad and bad[0].severity.value == "error" and "JSON" in bad[0].message
    assert report.summary["claimed_val_bpb"] is None
    _all_outputs_valid(report)


def test_non_utf8_log_is_parsed(record: Path) -> None:
    data = (record / "train_seed42.log").read_bytes()
    (record / "train_seed42.log").write_bytes(b"\xff\xfe garbage \x80\x81\n" + data)
    report = audit_folder(record)
    assert report.summary["n_runs"] == 3
    _all_outputs_valid(report)


def test_large_log_is_streamed(record: Path) -> None:
    # ~11 MB of progress lines between the header and the final metrics.
    log = (record / "train_seed999.log").read_text().splitlines(keepends=True)
    cut = next(i for i, ln in enumerate(log) if ln.startswith("Serialized model"))
    filler = "step:100/200 train_loss:3.5000 train_time:300000ms step_avg:3000.00ms\n"
    with (record / "train_seed999.log").open("w") as fh:
        fh.writelines(log[:cut])
        fh.write(filler * 150_000)
        fh.writelines(log[cut:])
    assert (record / "train_seed999.log").stat().st_size > 10_000_000
    report = audit_folder(record)
    run = next(r for r in report.runs if r["seed"] == 999)
    assert run["val_bpb"] == 1.029


def test_symlink_leaving_the_folder_is_skipped(record: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.py"
    secret.write_text("import socket\nsocket.create_connection(('x', 1))\n")
    os.symlink(secret, record / "helper.py")
    os.symlink("/", record / "root")
    report = audit_folder(record)
    skipped = {f.file for f in report.findings if f.rule == "PG104"}
    assert skipped == {"helper.py", "root"}
    # The file behind the link was not read.
    assert not any(f.rule == "PG204" for f in report.findings)


def test_symlink_inside_the_folder_is_read(record: Path) -> None:
    os.symlink("train_seed42.log", record / "link.log")
    report = audit_folder(record)
    assert not any(f.rule == "PG104" for f in report.findings)
    assert report.summary["n_runs"] == 3


def test_syntax_error_is_a_finding(record: Path) -> None:
    (record / "helper.py").write_text("def broken(:\n    pass\n")
    report = audit_folder(record)
    (f,) = [f for f in report.findings if f.rule == "PG103"]
    assert f.file == "helper.py" and f.line == 1


def test_null_bytes_and_binary_python(record: Path) -> None:
    (record / "weird.py").write_bytes(b"x = 1\x00\x00\n")
    (record / "model.bin").write_bytes(os.urandom(4096))
    report = audit_folder(record)
    assert report.verdict in {"pass", "review", "fail"}
    _all_outputs_valid(report)


def test_submission_is_a_list(record: Path) -> None:
    (record / "submission.json").write_text("[1, 2, 3]")
    report = audit_folder(record)
    assert any(f.rule == "PG102" and f.severity.value == "error" for f in report.findings)


def test_unreadable_subfolder_and_deep_nesting(record: Path) -> None:
    deep = record
    for i in range(12):
        deep = deep / f"d{i}"
    deep.mkdir(parents=True)
    (deep / "x.py").write_text("x = 1\n")
    report = audit_folder(record)
    assert any("deeper" in f.message for f in report.findings if f.rule == "PG104")


def test_decompression_bomb_in_a_packed_layer(record: Path) -> None:
    import base64
    import zlib

    # 80 MB of output from ~80 kB of payload: over the unpacker's output budget.
    bomb = base64.b85encode(zlib.compress(b"#" * 80_000_000, 9)).decode()
    (record / "packed.py").write_text(
        f'import zlib, base64\nexec(zlib.decompress(base64.b85decode("{bomb}")))\n'
    )
    report = audit_folder(record)
    _all_outputs_valid(report)
    assert any(f.rule == "PG105" and f.file == "packed.py" for f in report.findings)


def test_oversized_source_is_truncated_and_reported(
    record: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import audit.facts

    monkeypatch.setattr(audit.facts, "MAX_SOURCE_BYTES", 64)
    (record / "big.py").write_text("x = 1\n" * 100)
    report = audit_folder(record)
    notes = [f for f in report.findings if f.rule == "PG104" and f.file == "big.py"]
    assert notes and "only the start was analysed" in notes[0].message
    _all_outputs_valid(report)


def test_huge_submission_is_not_read(record: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import audit.facts

    monkeypatch.setattr(audit.facts, "MAX_SUBMISSION_BYTES", 100)
    report = audit_folder(record)
    bad = [f for f in report.findings if f.rule == "PG102"]
    assert bad and "too large" in bad[0].message and bad[0].severity.value == "error"


@pytest.mark.parametrize(
    ("source", "call"),
    [
        ('import subprocess\nsubprocess.run(["wget", "https://x.org/m.pt"])\n', "subprocess.run"),
        (
            "import urllib.request\nurllib.request.urlopen('https://x.org')\n",
            "urllib.request.urlopen",
        ),
        # NFKC: fullwidth letters spell the ASCII identifier `urlopen` to the parser
        (
            "from urllib.request import urlopen\n\uff55\uff52\uff4c\uff4f\uff50\uff45\uff4e('https://x.org')\n",
            "urlopen",
        ),
    ],
)
def test_network_calls_are_found_however_spelled(source: str, call: str) -> None:
    found = [f for f in audit_source(source, select=["PG204"]) if f.rule == "PG204"]
    assert [call in f.message for f in found] == [True]


@pytest.mark.parametrize(
    "source",
    [
        'import subprocess\nsubprocess.run(["ls", "-l", "data"])\n',
        'import subprocess\nsubprocess.run(["echo", "see https://x.org"])\n',
        "import os\nos.system('nvidia-smi')\n",
    ],
)
def test_shell_calls_without_a_download_are_not_network(source: str) -> None:
    assert not [f for f in audit_source(source, select=["PG204"]) if f.rule == "PG204"]
