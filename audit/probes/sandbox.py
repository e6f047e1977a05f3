"""Sandbox: launch the probe harness in a subprocess and talk to it under one wall-clock deadline.

The child runs `python -I audit/probes/harness.py` in a fresh temporary working directory with
a stripped environment (no proxies, no user variables except the ones explicitly passed),
in its own process group, with resource limits (address space, CPU seconds, file size, no core
dumps). The harness blocks the network itself before importing the user's script. Every read
from the child waits at most until the session deadline; past it the whole process group is
killed and `SandboxTimeout` is raised.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

HARNESS = Path(__file__).with_name("harness.py")
DEFAULT_MEMORY_MB = 16384
STDERR_TAIL_BYTES = 4000

# Variables kept from the parent: locale/threading knobs that change no result, never
# proxies, tokens or paths of the user's machine.
_KEPT_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class SandboxError(Exception):
    """The child died, broke the channel or answered nonsense."""


class SandboxTimeout(SandboxError):
    """The session deadline passed; the child's process group was killed."""


def child_environment(workdir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The complete environment of the child: minimal, proxy-free, plus `extra`."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        # CPU float32 by default: bit-reproducible scores (the tolerances assume it) and no
        # clash between CUDA's huge address-space reservations and RLIMIT_AS. A caller may
        # pass CUDA_VISIBLE_DEVICES explicitly to probe on a GPU.
        "CUDA_VISIBLE_DEVICES": "",
    }
    env.update({k: os.environ[k] for k in _KEPT_VARIABLES if k in os.environ})
    for key, value in (extra or {}).items():
        if "proxy" in key.lower():
            continue
        env[str(key)] = str(value)
    return env


def _limits(timeout_s: float, memory_mb: int | None) -> None:  # runs in the child before exec
    import resource

    def cap(which: int, value: int) -> None:
        with contextlib.suppress(ValueError, OSError):
            _soft, hard = resource.getrlimit(which)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            resource.setrlimit(which, (value, value if hard == resource.RLIM_INFINITY else hard))

    cap(resource.RLIMIT_CORE, 0)
    cap(resource.RLIMIT_FSIZE, 1 << 30)
    # CPU seconds accrue on every core; this is a backstop should the parent die.
    cap(resource.RLIMIT_CPU, int(timeout_s * max(1, os.cpu_count() or 1)) + 30)
    if memory_mb:
        cap(resource.RLIMIT_AS, memory_mb << 20)


class ScorerProcess:
    """One sandboxed scorer: `start()` imports the script, `request()` asks for scores."""

    def __init__(
        self,
        script: Path,
        *,
        artifact: Path | None = None,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
        timeout_s: float = 300.0,
        memory_mb: int | None = DEFAULT_MEMORY_MB,
    ) -> None:
        self.script = Path(script).resolve()
        self.artifact = Path(artifact).resolve() if artifact else None
        self.extra_env = dict(env or {})
        self.overrides = dict(overrides or {})
        self.timeout_s = float(timeout_s)
        # The address-space cap is incompatible with CUDA, whose runtime reserves far more
        # virtual memory than it uses.
        gpu = bool(self.extra_env.get("CUDA_VISIBLE_DEVICES", "").strip())
        self.memory_mb = None if gpu else memory_mb
        self.deadline = 0.0
        self.blocked: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: Path | None = None
        self._stderr: Any = None
        self._buffer = b""
        self._selector: selectors.BaseSelector | None = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> dict[str, Any]:
        """Launch the child and return its first answer (the scorer description)."""
        self.deadline = time.monotonic() + self.timeout_s
        self._tmp = Path(tempfile.mkdtemp(prefix="pgolf-probe-"))
        workdir = self._tmp / "work"
        workdir.mkdir()
        self._stderr = open(self._tmp / "stderr.txt", "w+b")  # noqa: SIM115 (closed in close())
        if sys.platform.startswith("win"):
            preexec = None
        else:
            timeout, memory = self.timeout_s, self.memory_mb

            def preexec() -> None:
                _limits(timeout, memory)

        self._proc = subprocess.Popen(
            [sys.executable, "-I", str(HARNESS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=workdir,
            env=child_environment(workdir, self.extra_env),
            start_new_session=True,
            preexec_fn=preexec,
        )
        assert self._proc.stdout is not None
        os.set_blocking(self._proc.stdout.fileno(), False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._proc.stdout, selectors.EVENT_READ)
        config = {
            "script": str(self.script),
            "artifact": str(self.artifact) if self.artifact else None,
            "overrides": self.overrides,
        }
        self._send(config)
        return self._receive()

    def request(self, op: str, **payload: Any) -> dict[str, Any]:
        """Send one request and wait (until the deadline at most) for its answer."""
        self._send({"op": op, **payload})
        return self._receive()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def close(self) -> None:
        """Ask the child to exit, kill its process group if it does not, remove the temp dir."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                assert proc.stdin is not None
                proc.stdin.write(b'{"op": "exit"}\n')
                proc.stdin.flush()
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._kill()
        if self._selector is not None:
            self._selector.close()
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                with contextlib.suppress(OSError):
                    if stream is not None:
                        stream.close()
        if self._stderr is not None:
            self._stderr.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        self._proc = None

    def __enter__(self) -> ScorerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.flush()
        self._stderr.seek(0, os.SEEK_END)
        size = self._stderr.tell()
        self._stderr.seek(max(0, size - STDERR_TAIL_BYTES))
        return self._stderr.read().decode("utf-8", "replace")

    # -- channel ---------------------------------------------------------------------
    def _kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def _send(self, data: dict[str, Any]) -> None:
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        try:
            proc.stdin.write(json.dumps(data).encode() + b"\n")
            proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise SandboxError(self._death_message()) from exc

    def _receive(self) -> dict[str, Any]:
        proc = self._proc
        assert proc is not None and proc.stdout is not None and self._selector is not None
        while b"\n" not in self._buffer:
            left = self.remaining()
            if left <= 0:
                self._kill()
                raise SandboxTimeout(f"timed out after {self.timeout_s:g} s (process killed)")
            if not self._selector.select(timeout=min(left, 1.0)):
                continue
            chunk = proc.stdout.read(1 << 20)
            if chunk is None:  # spurious wake-up on a non-blocking pipe
                continue
            if not chunk:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=2)
                raise SandboxError(self._death_message())
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            answer: dict[str, Any] = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SandboxError(f"the probe harness answered garbage: {line[:80]!r}") from exc
        self.blocked = list(answer.get("blocked", []))
        return answer

    def _death_message(self) -> str:
        proc = self._proc
        code = proc.poll() if proc is not None else None
        tail = [ln for ln in self.stderr_tail().strip().splitlines() if ln.strip()]
        last = tail[-1].strip() if tail else "no output on stderr"
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            return f"the scorer process was killed by {name} ({last})"
        return f"the scorer process exited with code {code} ({last})"
