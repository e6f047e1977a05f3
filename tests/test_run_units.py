"""Runner helpers: commands, env parsing, references, artifacts, run.json round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgolf.errors import InputError
from pgolf.run_state import RunState, SeedRecord, hardware_summary, load_state, save_state
from pgolf.runner import (
    RunConfig,
    find_artifact,
    parse_env,
    reference_scores,
    trainer_command,
    validate_config,
)


def test_single_process_and_torchrun_commands(tmp_path: Path) -> None:
    script = tmp_path / "train_gpt.py"
    config = RunConfig(seeds=[1], out=tmp_path, python="py")
    assert trainer_command(config, script) == ["py", str(script)]
    config.nproc = 8
    assert trainer_command(config, script) == [
        "py",
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=8",
        str(script),
    ]
    config.torchrun_args = ["--nnodes=2", "--rdzv-endpoint=h:1"]
    assert "--standalone" not in trainer_command(config, script)


def test_parse_env() -> None:
    assert parse_env(["A=1", "B_2=x=y", "EMPTY="]) == {"A": "1", "B_2": "x=y", "EMPTY": ""}
    for bad in ("NOEQ", "=1", "1A=2", "A-B=1"):
        with pytest.raises(InputError):
            parse_env([bad])


def test_validate_config_defaults_timeout_to_caps_plus_grace(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text("")
    config = RunConfig(seeds=[1], out=tmp_path, script=script)
    validate_config(config)
    assert config.effective_timeout == 600 + 600 + 300
    config.data = tmp_path / "missing"
    with pytest.raises(InputError, match="data directory not found"):
        validate_config(config)


def test_reference_scores_from_logs_then_submission(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "train_seed1.log").write_text("seed:1\nfinal_a_exact val_loss:2 val_bpb:1.10000000\n")
    (logs / "train_seed2.log").write_text("seed:2\nfinal_a_exact val_loss:2 val_bpb:1.20000000\n")
    (logs / "requirements.txt").write_text("torch\n")
    assert sorted(reference_scores(logs)) == [1.1, 1.2]
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "submission.json").write_text(
        json.dumps(
            {"val_bpb": 1.15, "seed_results": {"1": {"val_bpb": 1.1}, "2": {"val_bpb": 1.2}}}
        )
    )
    assert sorted(reference_scores(sub)) == [1.1, 1.2]
    (sub / "submission.json").write_text(json.dumps({"val_bpb": 1.15}))
    assert reference_scores(sub) == [1.15]
    (sub / "submission.json").write_text("{broken")
    with pytest.raises(InputError, match="no per-seed val_bpb"):
        reference_scores(sub)


def test_find_artifact(tmp_path: Path) -> None:
    assert find_artifact(tmp_path / "none") is None
    assert find_artifact(tmp_path) is None
    (tmp_path / "other.ptz").write_bytes(b"1")
    assert find_artifact(tmp_path) == tmp_path / "other.ptz"
    (tmp_path / "final_model.int6.ptz").write_bytes(b"12")
    assert find_artifact(tmp_path) == tmp_path / "final_model.int6.ptz"


def _state() -> RunState:
    return RunState(
        command=["pgolf", "run"],
        trainer_command=["python", "train_gpt.py"],
        env={"A": "1"},
        script="train_gpt.py",
        script_source="/x/train_gpt.py",
        script_sha256="0" * 64,
        data={"fingerprint": "f"},
        torch_version="2.13.0",
        python_version="3.11",
        hardware={"gpus": []},
        caps={"bytes_total": 16_000_000},
        nproc=1,
        timeout_s=1500.0,
        seeds={"42": SeedRecord(seed=42, status="ok", val_bpb=1.0)},
    )


def test_run_state_round_trip_and_bad_file(tmp_path: Path) -> None:
    state = _state()
    save_state(tmp_path, state)
    loaded = load_state(tmp_path)
    assert loaded is not None
    assert loaded.to_dict() == state.to_dict()
    assert loaded.seeds["42"].val_bpb == 1.0
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot resume"):
        load_state(tmp_path)
    assert load_state(tmp_path / "empty") is None


def test_hardware_summary() -> None:
    gpus = ["NVIDIA H100 80GB HBM3, 81559 MiB"] * 8
    assert hardware_summary({"gpus": gpus}, nproc=8) == "8x NVIDIA H100 80GB HBM3"
    assert hardware_summary({"gpus": [], "machine": "x86_64", "cpu_count": 2}) == (
        "CPU x86_64 (2 cores)"
    )


def _saved_state(folder: Path) -> dict:
    state = _state()
    save_state(folder, state)
    return json.loads((folder / "run.json").read_text())


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("seeds", [1, 2]),
        ("data", "x"),
        ("env", [1]),
        ("env", {"A": 1}),
        ("caps", None),
        ("nproc", "2"),
        ("timeout_s", "soon"),
        ("trainer_command", "python train_gpt.py"),
        ("seeds", {"42": {"seed": 42, "status": "done"}}),
        ("seeds", {"42": {"seed": "x", "status": "ok"}}),
        ("seeds", {"42": {"seed": 42, "status": "ok", "val_bpb": "low"}}),
    ],
)
def test_run_json_with_wrong_types_is_an_input_error(
    tmp_path: Path, key: str, value: object
) -> None:
    data = _saved_state(tmp_path)
    data[key] = value
    (tmp_path / "run.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match=rf"run\.json: cannot resume from it \(.*{key}"):
        load_state(tmp_path)


def test_run_json_that_is_a_directory_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "run.json").mkdir()
    with pytest.raises(InputError, match=r"run\.json: cannot resume from it"):
        load_state(tmp_path)
