"""Killing `pgolf run` mid-seed keeps finished seeds; rerunning the same command resumes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

FAKE = Path(__file__).parent / "fixtures" / "run" / "fake_trainer.py"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    from pgolf.data import write_shard

    data = tmp_path / "data"
    data.mkdir()
    write_shard(data / "fineweb_train_000000.bin", np.arange(100) % 40)
    write_shard(data / "fineweb_val_000000.bin", np.arange(40) % 40)
    return data


def _command(data: Path, out: Path, flags: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pgolf.cli",
        "run",
        "--seeds",
        "1",
        "2",
        "3",
        "--script",
        str(FAKE),
        "--data",
        str(data),
        "--out",
        str(out),
        "--no-audit",
        "--env",
        "FAKE_MODE_2=slow_once",
        "--env",
        "FAKE_SLEEP_S=120",
        "--env",
        f"FAKE_STATE_DIR={flags}",
    ]


def _seeds(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())["seeds"]


def _wait_for_seed_2_mid_run(out: Path, flags: Path, proc: subprocess.Popen) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the runner exited early"
        log = out / "train_seed2.log"
        pid_file = flags / "pid_2"
        if (
            pid_file.exists()
            and log.exists()
            and "step:20/20" in log.read_text(errors="replace")
            and _seeds(out)["2"]["status"] == "running"
        ):
            return int(pid_file.read_text())
        time.sleep(0.1)
    raise AssertionError("seed 2 never got going")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); read its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_kill_mid_seed_then_resume(data_dir: Path, tmp_path: Path, sig: signal.Signals) -> None:
    out = tmp_path / "run"
    flags = tmp_path / "flags"
    flags.mkdir()
    command = _command(data_dir, out, flags)
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    trainer_pid = _wait_for_seed_2_mid_run(out, flags, proc)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    if sig == signal.SIGKILL:
        # A SIGKILLed runner cannot clean up: its trainer (own session) is orphaned.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(trainer_pid, signal.SIGKILL)
    else:
        assert proc.returncode == 1
        assert b"rerun the same command to resume" in stderr
        assert not _alive(trainer_pid), "SIGTERM must take the trainer down too"
    seeds = _seeds(out)
    assert seeds["1"]["status"] == "ok"
    assert seeds["2"]["status"] == ("running" if sig == signal.SIGKILL else "failed")
    assert seeds["3"]["status"] == "pending"
    finished_log = (out / "train_seed1.log").read_bytes()

    rerun = subprocess.run(command, capture_output=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr.decode()
    seeds = _seeds(out)
    assert seeds["1"]["attempts"] == 1
    assert seeds["2"]["attempts"] == 2
    assert all(seeds[key]["status"] == "ok" for key in ("1", "2", "3"))
    assert (out / "train_seed1.log").read_bytes() == finished_log
    submission = json.loads((out / "submission.json").read_text())
    assert submission["seeds"] == [1, 2, 3]
