"""Probe harness: the code that runs INSIDE the sandboxed subprocess and executes score requests.

Started by audit/probes/sandbox.py as `python -I harness.py` in a fresh temporary working
directory. It blocks the network and process spawning before anything else is imported, takes
the real stdin/stdout for itself (the user's prints go to stderr), imports the user's script by
path as a module (never as __main__), calls its `pgolf_scorer(...)`, and then answers JSON
requests, one per line: `score`, `candidates` (C2 rows built here to keep messages small) and
`exit`. It only measures; every verdict is computed by the parent process.

Self-contained on purpose: with `-I` neither its own directory nor PYTHONPATH is on sys.path, and
it must not import pgolf or audit. Only numpy (and whatever the user's script imports) is used.
"""

from __future__ import annotations

import os
import socket
import sys

MAX_RECORDED_ATTEMPTS = 20
_blocked: list[str] = []


def _record(what: str) -> None:
    if len(_blocked) < MAX_RECORDED_ATTEMPTS:
        _blocked.append(what)


class SandboxRefusal(PermissionError):
    """Raised for every network or process-spawning attempt (an OSError, so callers degrade)."""


def _refuse(what: str) -> SandboxRefusal:
    _record(what)
    return SandboxRefusal(f"{what} is blocked by the pgolf probe sandbox")


_REFUSED_EVENTS = {
    "socket.connect": "network connection",
    "socket.sendto": "network send",
    "socket.sendmsg": "network send",
    "socket.getaddrinfo": "DNS lookup",
    "socket.gethostbyname": "DNS lookup",
    "socket.gethostbyaddr": "DNS lookup",
    "subprocess.Popen": "starting a subprocess",
    "os.system": "starting a subprocess",
    "os.exec": "starting a subprocess",
    "os.posix_spawn": "starting a subprocess",
    "os.spawn": "starting a subprocess",
}


def _audit_hook(event: str, args: tuple) -> None:
    what = _REFUSED_EVENTS.get(event)
    if what is not None:
        detail = args[1] if event == "socket.connect" and len(args) > 1 else ""
        raise _refuse(f"{what} ({event} {detail!r})" if detail else f"{what} ({event})")
    # Creating an internet socket is refused outright; AF_UNIX sockets (local IPC used by
    # some libraries) may be created but never connected (socket.connect above).
    if event == "socket.__new__" and len(args) > 1 and args[1] not in (-1, socket.AF_UNIX):
        raise _refuse(f"creating a network socket (family {args[1]})")


_RealSocket = socket.socket


class _BlockedSocket(_RealSocket):
    """Subclassable stand-in for socket.socket (ssl subclasses it at import) that never opens."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise _refuse("opening a socket (socket.socket)")


def _blocked_function(name: str):  # type: ignore[no-untyped-def]
    def blocked(*args: object, **kwargs: object) -> object:
        raise _refuse(f"network access (socket.{name})")

    blocked.__name__ = name
    return blocked


def install_guards() -> None:
    """Block the network and process spawning for this interpreter (before user code runs)."""
    socket.socket = _BlockedSocket  # type: ignore[misc]
    for name in ("create_connection", "getaddrinfo", "gethostbyname", "gethostbyname_ex"):
        setattr(socket, name, _blocked_function(name))
    # An audit hook cannot be removed, and it also sees the C-level calls that bypass the
    # Python wrappers replaced above (e.g. `import _socket`).
    sys.addaudithook(_audit_hook)


install_guards()

import importlib.util  # noqa: E402  (the guards must be in place before any other import)
import inspect  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import traceback  # noqa: E402

import numpy as np  # noqa: E402

MODULE_NAME = "pgolf_probe_target"


class ProtocolError(Exception):
    """The scorer does not follow docs/scorer-protocol.md (wrong shape, wrong type...)."""


def _short_exc(exc: BaseException) -> str:
    """One line naming the exception and the deepest frame in the user's script."""
    where = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == _SCRIPT_PATH:
            where = f" (line {frame.lineno}, in {frame.name})"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}{where}: {text}" if text else f"{type(exc).__name__}{where}"


_SCRIPT_PATH = ""


def _to_float_array(out: object, shape: tuple[int, ...], what: str) -> np.ndarray:
    if hasattr(out, "detach"):  # a torch tensor
        out = out.detach().cpu().double().numpy()  # type: ignore[union-attr]
    try:
        arr = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(
            f"{what} returned {type(out).__name__}, not an array of floats"
        ) from exc
    if arr.shape != shape:
        raise ProtocolError(f"{what} returned shape {arr.shape}, expected {shape}")
    return arr


def _jsonable(arr: np.ndarray) -> list[float | None]:
    return [None if math.isnan(x) else float(x) for x in arr.tolist()]


def _accepts_two_arguments(func: object) -> bool:
    try:
        params = list(inspect.signature(func).parameters.values())  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return True
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2


class Session:
    """Holds the user's scorer and answers the parent's requests."""

    def __init__(self, scorer: object) -> None:
        self.scorer = scorer
        batch = getattr(scorer, "score_batch", None)
        self.score_batch = batch if callable(batch) else None
        self.accepts_mask = _accepts_two_arguments(scorer.score)  # type: ignore[attr-defined]

    def score(self, tokens: list[int], mask: list[bool] | None) -> np.ndarray:
        arr = np.asarray(tokens, dtype=np.int64)
        if mask is None:
            out = self.scorer.score(arr)  # type: ignore[attr-defined]
        elif not self.accepts_mask:
            raise ProtocolError("score() takes no adapt_mask argument")
        else:
            out = self.scorer.score(arr, np.asarray(mask, dtype=bool))  # type: ignore[attr-defined]
        return _to_float_array(out, (len(arr),), "score()")

    def candidates(self, prefix: list[int], alphabet: int, max_batch_tokens: int) -> np.ndarray:
        """Score of every symbol v at the position after `prefix` (one fresh-state row each)."""
        t = len(prefix)
        rows = np.empty((alphabet, t + 1), dtype=np.int64)
        rows[:, :t] = np.asarray(prefix, dtype=np.int64)
        rows[:, t] = np.arange(alphabet, dtype=np.int64)
        last = np.empty(alphabet, dtype=np.float64)
        if self.score_batch is None:
            for v in range(alphabet):
                last[v] = self.score(rows[v].tolist(), None)[t]
            return last
        step = max(1, max_batch_tokens // (t + 1))
        for start in range(0, alphabet, step):
            part = rows[start : start + step]
            out = _to_float_array(self.score_batch(part), part.shape, "score_batch()")
            last[start : start + len(part)] = out[:, t]
        return last

    def handle(self, request: dict) -> dict:
        op = request.get("op")
        if op == "score":
            scores = self.score(request["tokens"], request.get("mask"))
            return {"ok": True, "scores": _jsonable(scores)}
        if op == "candidates":
            last = self.candidates(
                request["prefix"], int(request["alphabet"]), int(request["max_batch_tokens"])
            )
            return {"ok": True, "scores": _jsonable(last), "batched": self.score_batch is not None}
        raise ProtocolError(f"unknown request {op!r}")


def _load_scorer(config: dict) -> tuple[dict, Session | None]:
    global _SCRIPT_PATH
    script = os.path.abspath(config["script"])
    _SCRIPT_PATH = script
    # Sibling modules of a record folder must stay importable, as in a real run.
    sys.path.insert(0, os.path.dirname(script))
    spec = importlib.util.spec_from_file_location(MODULE_NAME, script)
    if spec is None or spec.loader is None:
        return {"ok": False, "status": "error", "message": f"cannot import {script}"}, None
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        msg = f"syntax error in {os.path.basename(script)} line {exc.lineno}: {exc.msg}"
        return {"ok": False, "status": "error", "message": msg}, None
    except SystemExit as exc:
        msg = f"the script called sys.exit({exc.code!r}) while being imported"
        return {"ok": False, "status": "error", "message": msg}, None
    except BaseException as exc:
        msg = f"importing the script failed: {_short_exc(exc)}"
        return {"ok": False, "status": "error", "message": msg}, None
    factory = getattr(module, "pgolf_scorer", None)
    if not callable(factory):
        msg = (
            f"{os.path.basename(script)} defines no pgolf_scorer(); "
            "see docs/scorer-protocol.md to expose the evaluator to the probes"
        )
        return {"ok": False, "status": "skipped", "message": msg}, None
    try:
        scorer = factory(config.get("artifact"), **config.get("overrides", {}))
        vocab = int(scorer.vocab_size)
        level = str(getattr(scorer, "level", "token"))
        if not callable(getattr(scorer, "score", None)):
            raise ProtocolError("the scorer has no score(tokens, adapt_mask=None) method")
    except BaseException as exc:
        msg = f"pgolf_scorer() failed: {_short_exc(exc)}"
        return {"ok": False, "status": "error", "message": msg}, None
    session = Session(scorer)
    info = {
        "ok": True,
        "vocab_size": vocab,
        "level": level,
        "has_batch": session.score_batch is not None,
        "accepts_mask": session.accepts_mask,
        "python": sys.version.split()[0],
    }
    return info, session


def main() -> None:
    # Keep the real stdin/stdout as the private request channel; the user's code gets
    # /dev/null as stdin and stderr as stdout, so its prints cannot corrupt the channel.
    chan_in = os.fdopen(os.dup(0), "r", encoding="utf-8")
    chan_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def reply(data: dict) -> None:
        data["blocked"] = list(_blocked)
        chan_out.write(json.dumps(data) + "\n")
        chan_out.flush()

    config = json.loads(chan_in.readline())
    info, session = _load_scorer(config)
    reply(info)
    if session is None:
        return
    for line in chan_in:
        request = json.loads(line)
        if request.get("op") == "exit":
            break
        try:
            reply(session.handle(request))
        except BaseException as exc:
            reply({"ok": False, "status": "error", "message": _short_exc(exc)})


if __name__ == "__main__":
    main()
