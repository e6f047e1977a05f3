"""Run one seed: a subprocess in its own session, output streamed to its log, a hard timeout.

The child's stdout and stderr go, byte for byte, to `train_seed<N>.log` (flushed per line so a
kill loses nothing already printed) and each line is handed to a callback for the live
display. A timeout, Ctrl-C or SIGTERM kills the whole process group (torchrun and its workers).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pgolf.logs import RunLog, parse_log

KILL_GRACE_S = 5.0


@dataclass
class SeedOutcome:
    """How one seed's subprocess ended and what its log says."""

    status: str
    reason: str | None
    returncode: int | None
    wall_s: float
    log: RunLog | None
    disk_full: bool = False


class _Pump(threading.Thread):
    """Copies the child's output to the log file and to the line callback."""

    def __init__(
        self, stream: IO[bytes], log_file: IO[bytes], on_line: Callable[[str], None] | None
    ) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.log_file = log_file
        self.on_line = on_line
        self.write_error: OSError | None = None
        self.last_lines: list[str] = []

    def run(self) -> None:
        for raw in iter(self.stream.readline, b""):
            if self.write_error is None:
                try:
                    self.log_file.write(raw)
                except OSError as exc:
                    self.write_error = exc
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if text.strip():
                self.last_lines = [*self.last_lines[-4:], text[:300]]
            if self.on_line is not None:
                try:
                    self.on_line(text)
                except Exception:  # a display glitch must never stop a run
                    self.on_line = None


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's process group, then SIGKILL what is left after a grace period."""
    for sig, wait_s in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, KILL_GRACE_S)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
    # Workers may outlive the leader; make sure the group is gone.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_seed(
    cmd: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    log_path: Path,
    timeout_s: float,
    on_line: Callable[[str], None] | None = None,
    poll_s: float = 0.05,
) -> SeedOutcome:
    """Run one seed to completion (or timeout); KeyboardInterrupt kills the child and re-raises."""
    start = time.monotonic()
    try:
        # Unbuffered: every line reaches the file as soon as it is printed.
        log_file = log_path.open("wb", buffering=0)
    except OSError as exc:
        return SeedOutcome(
            "failed", f"cannot write {log_path.name}: {exc.strerror or exc}", None, 0.0, None, True
        )
    timed_out = False
    with log_file:
        try:
            proc = subprocess.Popen(
                list(cmd),
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            return SeedOutcome(
                "failed", f"cannot start {cmd[0]}: {exc.strerror or exc}", None, 0.0, None
            )
        assert proc.stdout is not None
        pump = _Pump(proc.stdout, log_file, on_line)
        pump.start()
        try:
            while True:
                try:
                    proc.wait(timeout=poll_s)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if pump.write_error is not None:
                    kill_group(proc)
                    break
                if time.monotonic() - start > timeout_s:
                    timed_out = True
                    kill_group(proc)
                    break
        except BaseException:
            kill_group(proc)
            pump.join(timeout=KILL_GRACE_S)
            raise
        pump.join(timeout=KILL_GRACE_S)
        if proc.stdout is not None:
            proc.stdout.close()
    wall_s = time.monotonic() - start
    returncode = proc.returncode
    log = parse_log(log_path) if pump.write_error is None else None
    if pump.write_error is not None:
        error = pump.write_error
        reason = f"cannot write {log_path.name}: {error.strerror or error}"
        return SeedOutcome("failed", reason, returncode, wall_s, log, disk_full=True)
    if timed_out:
        reason = f"hard timeout: still running after {timeout_s:.0f} s; killed"
        return SeedOutcome("timeout", reason, returncode, wall_s, log)
    if returncode != 0:
        if returncode is not None and returncode < 0:
            what = f"killed by signal {-returncode}"
        else:
            what = f"exit code {returncode}"
        tail = pump.last_lines[-1] if pump.last_lines else "no output"
        return SeedOutcome("failed", f"{what}: {tail}", returncode, wall_s, log)
    if log is None or log.val_bpb is None:
        reason = "the script exited 0 but printed no final val_bpb metric line"
        return SeedOutcome("failed", reason, returncode, wall_s, log)
    if not math.isfinite(log.val_bpb):
        return SeedOutcome("failed", f"final val_bpb is {log.val_bpb}", returncode, wall_s, log)
    return SeedOutcome("ok", None, returncode, wall_s, log)
