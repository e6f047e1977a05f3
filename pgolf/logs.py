"""Lenient parser for Parameter Golf training logs (R8), shared by the runner and the auditor.

It reads the bundled trainer's logs and the historical upstream formats: the script's own
source before a line of exactly 100 ``=`` (or inside a ``Source code:`` block), hyperparameter
dumps (``key:value`` lines, ``key=value`` runs, an indented ``Hyperparameters:`` block),
progress lines (``step:N/M ...`` or ``N/M train_loss: ...``), size lines (the first
``Total submission size`` line is sometimes the raw model, so the last one wins), and final
metric lines such as ``final_int8_zlib_roundtrip_exact val_loss:X val_bpb:Y``. The reported
score is the LAST val_bpb metric line that is not a progress line.

Content never raises: bytes that are not UTF-8 are replaced, overlong lines are cut, the
embedded source is capped, and files are streamed line by line so multi-GB logs use bounded
memory. Only an unreadable file raises ``InputError``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pgolf.errors import InputError

SEPARATOR = "=" * 100
MAX_LINE_CHARS = 64 * 1024
MAX_SOURCE_CHARS = 8 * 1024 * 1024
MAX_WARNINGS = 50

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"
_TIMESTAMP_PREFIX = re.compile(r"^(?:\d{9,}(?:\.\d+)?\s+|\[rank\d+\]:\s*)")
_STEP_LINE = re.compile(r"^step:?\s*(\d+)\s*/\s*(\d+)\b|^(\d+)\s*/\s*(\d+)\s+(?=\S*(?:loss|val_))")
_STEP_ONLY = re.compile(r"^step:\s*(\d+)\b")
_LOSS = re.compile(r"(?:^|[\s\]])(?:train_)?loss[:=]\s*(" + _NUM + r")")
_STEP_TIME = re.compile(r"(?:train_time|\bt)[:=]\s*(\d+\.?\d*)\s*(ms|s|m)\b")
_VAL_BPB = re.compile(r"\bval_bpb[:=]\s*(" + _NUM + r")(?![\w.])", re.IGNORECASE)
_VAL_LOSS = re.compile(r"\bval_loss[:=]\s*(" + _NUM + r")(?![\w.])", re.IGNORECASE)
_METRIC_NAME = re.compile(r"\b(?:val_loss|val_bpb)[:=]", re.IGNORECASE)
_EVAL_TIME = re.compile(
    r"\b(?:\w*eval_time|time)[:=]\s*(\d+\.?\d*)\s*(ms|s)\b|\belapsed=(\d+\.?\d*)s\b"
)
_STOPPING = re.compile(r"^stopping_early\b")
_TRAIN_TOTAL = re.compile(r"\btrain_time_total[:=]\s*(\d+\.?\d*)\s*(ms|s)\b")
_EVAL_TOTAL = re.compile(r"\b(?:eval_time_total|total_eval_time)[:=]\s*(\d+\.?\d*)\s*(ms|s)\b")
_TOTAL_SIZE = re.compile(r"\bTotal submission(?: size)?[^:]*:\s*(\d[\d,]*)\s*bytes", re.IGNORECASE)
_BUDGET = re.compile(r"^budget:\s*(\d+)\s*/\s*\d+")
_ARTIFACT_BYTES = re.compile(r"^artifact_bytes:\s*(\d+)\s*$")
_MODEL_SIZE = re.compile(r"\bSerialized model([^:]*):\s*(\d[\d,]*)\s*bytes", re.IGNORECASE)
_CODE_SIZE = re.compile(
    r"\bCode(?: size)?\s*(\((?:un)?compressed\))?:\s*(\d[\d,]*)\s*bytes", re.IGNORECASE
)
_INLINE_BYTES = re.compile(r"\b(total|model|code)_bytes[:=](\d+)\b")
_KV_TOKEN = re.compile(r"^([A-Za-z_][\w.\-]*)[:=](\S+)$")
_BLOCK_KV = re.compile(r"^\s+([A-Za-z_][\w.\-]*)\s*[:=]\s?(.*)$")
_BLOCK_START = re.compile(r"^-*\s*Hyperparameters\s*:?\s*-*$", re.IGNORECASE)
_SEED_IN_NAME = re.compile(r"(?:^|[^a-z0-9])seed[_\-]?(\d+)", re.IGNORECASE)
_SEED_LOG_NAME = re.compile(r"(?:^|[_\-])log[_\-](\d+)\.\w+$", re.IGNORECASE)
# torchrun / glog / NCCL lines printed on stderr before the script's own output.
_LAUNCHER_NOISE = re.compile(
    r"^(?:[WIEF]\d{4} \d\d:\d\d|\*{5,}\s*$|Setting OMP_NUM_THREADS|\[[WIE]\d{3,4} |\[rank\d+\]"
    r"|\[\d{4}-\d\d-\d\d |NCCL |\s+warnings\.warn|\S+\.py:\d+: \w*Warning)"
)
_PY_HINT = re.compile(r"^(?:import |from \S+ import |def |class |\"\"\"|#!|# |@)")


@dataclass
class Metric:
    """One evaluation line: `name val_loss:X val_bpb:Y [eval_time:Zms]`."""

    name: str
    val_loss: float | None
    val_bpb: float
    line: int
    eval_time_s: float | None = None


@dataclass
class Progress:
    """What one training progress line says (used for live display)."""

    step: int
    total: int | None
    train_loss: float | None
    train_time_s: float | None


@dataclass
class RunLog:
    """Everything the parser recovered from one log; missing facts are None.

    `hyperparams` holds the configuration dump printed before training starts (the first
    occurrence of a key wins); `late_params` the key:value lines printed after it (runtime
    measurements such as tokens_per_s, and eval-time settings), which differ between seeds.
    """

    path: Path | None = None
    seed: int | None = None
    val_bpb: float | None = None
    val_loss: float | None = None
    metric_name: str | None = None
    metrics: list[Metric] = field(default_factory=list)
    steps: int | None = None
    train_time_s: float | None = None
    eval_time_s: float | None = None
    bytes_total: int | None = None
    bytes_code: int | None = None
    bytes_model: int | None = None
    embedded_source: str | None = None
    source_end_line: int | None = None
    hyperparams: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    total_steps: int | None = None
    last_train_loss: float | None = None
    n_lines: int = 0
    source_start_line: int | None = None
    late_params: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The per-run fields of the audit JSON `runs` list."""
        return {
            "log": str(self.path) if self.path is not None else None,
            "seed": self.seed,
            "val_bpb": self.val_bpb,
            "val_loss": self.val_loss,
            "bytes_total": self.bytes_total,
            "train_time_s": self.train_time_s,
            "eval_time_s": self.eval_time_s,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (JSON-friendly) of the whole parse."""
        data = asdict(self)
        data["path"] = str(self.path) if self.path is not None else None
        return data


def _seconds(value: str, unit: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    scale = {"ms": 1e-3, "s": 1.0, "m": 60.0}[unit]
    return number * scale


def _int(text: str) -> int | None:
    try:
        return int(text.replace(",", ""))
    except ValueError:
        return None


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value


def _is_separator(line: str) -> bool:
    return line.rstrip() == SEPARATOR


def _strip_prefix(line: str) -> str:
    return _TIMESTAMP_PREFIX.sub("", line, count=1)


def parse_progress(line: str) -> Progress | None:
    """Read a training progress line (`step:N/M train_loss:X train_time:Yms` and variants)."""
    text = _strip_prefix(line.strip())
    match = _STEP_LINE.match(text)
    if match is None:
        return None
    step = int(match.group(1) or match.group(3))
    total = int(match.group(2) or match.group(4))
    rest = text[match.end() :]
    loss_match = _LOSS.search(" " + rest)
    time_match = _STEP_TIME.search(rest)
    return Progress(
        step=step,
        total=total,
        train_loss=_float(loss_match.group(1)) if loss_match else None,
        train_time_s=_seconds(time_match.group(1), time_match.group(2)) if time_match else None,
    )


def seed_from_filename(name: str) -> int | None:
    """Seed encoded in a log file name (`train_seed42.log`, `ternary_log_42.txt`)."""
    matches = _SEED_IN_NAME.findall(name)
    if matches:
        return int(matches[-1])
    match = _SEED_LOG_NAME.search(name)
    return int(match.group(1)) if match else None


class _Parser:
    """Line-by-line state machine; feed lines, then `finish()`."""

    def __init__(self, path: Path | None) -> None:
        self.log = RunLog(path=path)
        self.lineno = 0
        # "preamble": before the first separator, lines may be the embedded source.
        self.state = "preamble"
        self.pending: list[str] = []
        self.pending_chars = 0
        self.source: list[str] = []
        self.source_chars = 0
        self.source_capped = False
        self.in_block = False
        self.expect_source = False
        self.training_started = False
        self.stop_train_time: float | None = None
        self.step_train_time: float | None = None
        self.explicit_train: float | None = None
        self.explicit_eval: float | None = None
        self.code_sizes: dict[str, int] = {}

    def warn(self, message: str) -> None:
        if len(self.log.warnings) < MAX_WARNINGS:
            self.log.warnings.append(message)

    def feed(self, line: str) -> None:
        self.lineno += 1
        if self.state == "preamble":
            self._feed_preamble(line)
        elif self.state == "source":
            self._feed_source(line)
        elif self.expect_source and _is_separator(line):
            self.expect_source = False
            self.state = "source"
        else:
            self.expect_source = False
            self._body(line, self.lineno)

    def _feed_preamble(self, line: str) -> None:
        if _is_separator(line):
            skip = _launcher_noise_prefix(self.pending)
            text = "\n".join(self.pending[skip:])
            if text.strip() and _looks_like_python(text):
                self._set_source(text, capped=self.source_capped)
                self.log.source_start_line = self.lineno - len(self.pending) + skip
                self.log.source_end_line = self.lineno
                self.pending = []
                self.state = "body"
            else:
                self._flush_pending()
                self.state = "body"
                self._body(line, self.lineno)
            return
        self.pending.append(line)
        self.pending_chars += len(line) + 1
        if self.pending_chars > MAX_SOURCE_CHARS:
            # No separator in the first megabytes: this log carries no leading source.
            self._flush_pending()
            self.state = "body"

    def _pending_items(self) -> Iterator[tuple[int, str]]:
        start = self.lineno - len(self.pending)
        for offset, text in enumerate(self.pending):
            yield start + offset, text

    def _flush_pending(self) -> None:
        items = list(self._pending_items())
        self.pending = []
        self.pending_chars = 0
        for number, text in items:
            self._body(text, number)

    def _feed_source(self, line: str) -> None:
        if self.log.source_start_line is None:
            self.log.source_start_line = self.lineno
        if _is_separator(line):
            self._set_source("\n".join(self.source), capped=self.source_capped)
            self.log.source_end_line = self.lineno
            self.source = []
            self.state = "body"
            return
        if self.source_chars + len(line) + 1 > MAX_SOURCE_CHARS:
            self.source_capped = True
            return
        self.source.append(line)
        self.source_chars += len(line) + 1

    def _set_source(self, text: str, *, capped: bool) -> None:
        if self.log.embedded_source is None:
            self.log.embedded_source = text
            if capped:
                self.warn(f"embedded source longer than {MAX_SOURCE_CHARS} characters; truncated")

    def _body(self, raw: str, number: int) -> None:
        if _is_separator(raw):
            self.in_block = False
            return
        if raw.strip() == "Source code:" and self.log.embedded_source is None:
            self.expect_source = True
            return
        line = _strip_prefix(raw.strip())
        if not line:
            return
        if self.in_block:
            block = _BLOCK_KV.match(raw)
            if block:
                self.log.hyperparams.setdefault(block.group(1), block.group(2).strip())
                return
            self.in_block = False
        if _BLOCK_START.match(line):
            self.in_block = True
            return
        progress = parse_progress(line)
        if progress is not None:
            self.training_started = True
            self._progress(progress, line)
            return
        if _STOPPING.match(line):
            self.training_started = True
            self._stopping(line)
            return
        # Cheap substring tests first: multi-GB logs are mostly lines none of these match.
        low = line.lower()
        if "val_bpb" in low and self._metric(line, number):
            self.training_started = True
            if "_bytes" in low:
                self._inline_sizes(line)
            return
        if ("bytes" in low or low.startswith("budget")) and self._sizes(line):
            return
        if "total" in low:
            self._times(line)
        if ":" in line or "=" in line:
            # Only the dump before training is configuration; later key:value lines are
            # mostly measurements (tokens_per_s, peak memory, ...) that differ per seed.
            self._pairs(line, self.log.late_params if self.training_started else None)

    def _progress(self, progress: Progress, line: str) -> None:
        self.log.steps = progress.step
        self.log.total_steps = progress.total
        if progress.train_loss is not None and "val_" not in line:
            self.log.last_train_loss = progress.train_loss
        if progress.train_time_s is not None:
            self.step_train_time = progress.train_time_s

    def _stopping(self, line: str) -> None:
        match = re.search(r"train_time[:=]\s*(\d+\.?\d*)\s*(ms|s)\b", line)
        if match:
            self.stop_train_time = _seconds(match.group(1), match.group(2))
        step = re.search(r"step[:=]\s*(\d+)\s*/\s*(\d+)", line)
        if step:
            self.log.steps = int(step.group(1))
            self.log.total_steps = int(step.group(2))

    def _metric(self, line: str, number: int) -> bool:
        bpb = _VAL_BPB.search(line)
        if bpb is None:
            return False
        value = _float(bpb.group(1))
        if value is None:
            return False
        loss = _VAL_LOSS.search(line)
        name_end = _METRIC_NAME.search(line)
        name = _metric_name(line[: name_end.start()]) if name_end else ""
        eval_time = _EVAL_TIME.search(line)
        seconds = None
        if eval_time:
            if eval_time.group(3) is not None:
                seconds = _seconds(eval_time.group(3), "s")
            else:
                seconds = _seconds(eval_time.group(1), eval_time.group(2))
        self.log.metrics.append(
            Metric(
                name=name or "val_bpb",
                val_loss=_float(loss.group(1)) if loss else None,
                val_bpb=value,
                line=number,
                eval_time_s=seconds,
            )
        )
        return True

    def _sizes(self, line: str) -> bool:
        total = _TOTAL_SIZE.search(line)
        if total:
            self.log.bytes_total = _int(total.group(1))
            return True
        budget = _BUDGET.match(line) or _ARTIFACT_BYTES.match(line)
        if budget:
            self.log.bytes_total = _int(budget.group(1))
            return True
        model = _MODEL_SIZE.search(line)
        if model:
            self.log.bytes_model = _int(model.group(2))
            return True
        code = _CODE_SIZE.search(line)
        if code:
            kind = (code.group(1) or "").strip("()").lower() or "plain"
            value = _int(code.group(2))
            if value is not None:
                self.code_sizes[kind] = value
            return True
        return False

    def _inline_sizes(self, line: str) -> None:
        """`model_bytes:N code_bytes:N total_bytes:N` tokens on a metric line."""
        for key, value in _INLINE_BYTES.findall(line):
            number = _int(value)
            if key == "total":
                self.log.bytes_total = number
            elif key == "model":
                self.log.bytes_model = number
            elif number is not None:
                self.code_sizes["plain"] = number

    def _times(self, line: str) -> None:
        train = _TRAIN_TOTAL.search(line)
        if train:
            self.explicit_train = _seconds(train.group(1), train.group(2))
        evaluation = _EVAL_TOTAL.search(line)
        if evaluation:
            self.explicit_eval = _seconds(evaluation.group(1), evaluation.group(2))

    def _pairs(self, line: str, target: dict[str, str] | None = None) -> None:
        into = self.log.hyperparams if target is None else target
        tokens = line.split()
        if not tokens or len(tokens) > 500:
            return
        pairs = [_KV_TOKEN.match(token) for token in tokens]
        if all(pairs):
            for pair in pairs:
                assert pair is not None
                into.setdefault(pair.group(1), pair.group(2))
            return
        if len(tokens) >= 2 and tokens[0].endswith(":") and _KV_TOKEN.match(tokens[0]) is None:
            # `seed: 42` style single pair outside an indented block.
            key = tokens[0][:-1]
            if re.fullmatch(r"[A-Za-z_][\w.\-]*", key) and len(tokens) == 2:
                into.setdefault(key, tokens[1])

    def finish(self) -> RunLog:
        if self.state == "preamble":
            self._flush_pending()
        elif self.state == "source":
            self._set_source("\n".join(self.source), capped=self.source_capped)
            self.warn("embedded source block never closed by a line of 100 '='")
        log = self.log
        log.n_lines = self.lineno
        if log.metrics:
            last = log.metrics[-1]
            log.val_bpb = last.val_bpb
            log.metric_name = last.name
            log.val_loss = last.val_loss
            if log.val_loss is None:
                # e.g. `ppm_mixer val_bpb:X` followed by nothing: take the loss of the
                # latest line with the same bpb if any.
                for metric in reversed(log.metrics):
                    if metric.val_loss is not None and metric.val_bpb == last.val_bpb:
                        log.val_loss = metric.val_loss
                        break
        else:
            log.warnings.insert(0, "no final val_bpb metric line found")
        for kind in ("compressed", "plain", "uncompressed"):
            if kind in self.code_sizes:
                log.bytes_code = self.code_sizes[kind]
                break
        log.train_time_s = _first(self.explicit_train, self.stop_train_time, self.step_train_time)
        final_eval = _final_eval_time(log.metrics)
        log.eval_time_s = _first(self.explicit_eval, final_eval)
        log.seed = _seed(log)
        for value in (log.val_bpb, log.val_loss):
            if value is not None and not math.isfinite(value):
                self.warn(f"final metric is not finite ({value})")
        return log


def _metric_name(prefix: str) -> str:
    """`final_x stride:64 ` -> `final_x`: leading words up to the first key:value token."""
    words = prefix.split()
    kept = words[:1]
    for word in words[1:]:
        if ":" in word or "=" in word:
            break
        kept.append(word)
    return " ".join(kept).rstrip(":")


def _first(*values: float | None) -> float | None:
    for value in values:
        if value is not None:
            return value
    return None


def _final_eval_time(metrics: list[Metric]) -> float | None:
    if not metrics:
        return None
    last = metrics[-1]
    if last.eval_time_s is not None:
        return last.eval_time_s
    # `X_exact` lines repeat the preceding `X` line (which carries eval_time) at 8 decimals.
    if last.name.endswith("_exact"):
        base = last.name[: -len("_exact")]
        for metric in reversed(metrics[:-1]):
            if metric.name.split()[0] == base.split()[0] and metric.eval_time_s is not None:
                return metric.eval_time_s
    # A trailing alias line repeating an earlier score (printed at 4 decimals there).
    for metric in reversed(metrics[:-1]):
        if metric.eval_time_s is not None and abs(metric.val_bpb - last.val_bpb) <= 6e-5:
            return metric.eval_time_s
    return None


def _launcher_noise_prefix(lines: list[str]) -> int:
    """How many leading lines are launcher noise (torchrun/NCCL warnings), not source."""
    count = 0
    for line in lines:
        if line.strip() and not _LAUNCHER_NOISE.match(line):
            break
        count += 1
    return count


def _looks_like_python(text: str) -> bool:
    return any(_PY_HINT.match(line) for line in text.splitlines()[:400])


def _seed(log: RunLog) -> int | None:
    from_dump = None
    for key in ("seed", "SEED", "s"):
        if key in log.hyperparams:
            from_dump = _int(log.hyperparams[key].strip().strip(","))
            if from_dump is not None:
                break
    from_name = seed_from_filename(log.path.name) if log.path is not None else None
    if from_dump is not None and from_name is not None and from_dump != from_name:
        log.warnings.append(
            f"seed {from_dump} in the hyperparameter dump differs from seed {from_name} in the file name"
        )
    return from_dump if from_dump is not None else from_name


def _iter_binary_lines(stream: BinaryIO) -> Iterator[str]:
    while True:
        chunk = stream.readline(MAX_LINE_CHARS)
        if not chunk:
            return
        if not chunk.endswith(b"\n") and len(chunk) >= MAX_LINE_CHARS:
            # Drain the rest of an overlong line without holding it in memory.
            while True:
                rest = stream.readline(MAX_LINE_CHARS)
                if not rest or rest.endswith(b"\n"):
                    break
        yield chunk.decode("utf-8", errors="replace").rstrip("\r\n")


def _iter_text_lines(text: str) -> Iterator[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        yield line[:MAX_LINE_CHARS].rstrip("\r")


def _parse_lines(lines: Iterable[str], path: Path | None) -> RunLog:
    parser = _Parser(path)
    for line in lines:
        parser.feed(line.replace("\x00", ""))
    return parser.finish()


def parse_log_text(text: str, path: Path | str | None = None) -> RunLog:
    """Parse log text already in memory; never raises on content."""
    return _parse_lines(_iter_text_lines(text), Path(path) if path is not None else None)


def parse_log(path: Path | str) -> RunLog:
    """Parse a log file in bounded memory; raises `InputError` only if it cannot be read."""
    file_path = Path(path)
    if file_path.exists() and not file_path.is_file() and not file_path.is_dir():
        # Opening a FIFO would block until a writer appears; a device may never end.
        raise InputError(f"{file_path}: cannot read log (not a regular file)")
    try:
        with file_path.open("rb") as raw:
            return _parse_lines(_iter_binary_lines(raw), file_path)
    except OSError as exc:
        raise InputError(f"{file_path}: cannot read log ({exc.strerror or exc})") from exc
