"""Facts of the challenge as versioned data: caps, required files, fields and log patterns.

Each fact names the rule id that enforces it. Nothing here is evaluated as code: patterns
are regular expressions matched against text, numbers are plain numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FACTS_VERSION = "2026.11.1"


@dataclass(frozen=True)
class Cap:
    rule: str
    condition: str
    limit: float
    unit: str
    text: str


BYTES_CAP = Cap("PG201", "R1", 16_000_000, "bytes", "artifact <= 16,000,000 decimal bytes")
TRAIN_TIME_CAP = Cap("PG211", "R2", 600.0, "s", "training <= 600 s wallclock on 8xH100")
EVAL_TIME_CAP = Cap("PG212", "R3", 600.0, "s", "evaluation <= 600 s on 8xH100")

RECORD_TRACK = "track_10min_16mb"
NON_RECORD_TRACK = "track_non_record_16mb"

# R7: files a record folder ships. (name, rule, severity when missing, what it is)
# Older valid folders renamed or dropped some of them, so a missing file is a warning;
# a folder without any Python code at all is an error (nothing could have been run).
REQUIRED_FILES: tuple[tuple[str, str, str, str], ...] = (
    ("train_gpt.py", "PG101", "warning", "the exact code that produced the logs"),
    ("submission.json", "PG101", "warning", "the claim: author, score, track"),
    ("README.md", "PG101", "warning", "what is new and how to reproduce"),
)
NO_CODE_SEVERITY = "error"
# At least one training log (R7/R8).
LOG_GLOBS = ("*.log", "*.txt")

# R7: fields submission.json must have (after lenient normalisation).
REQUIRED_FIELDS: tuple[str, ...] = ("author", "github_id", "name", "val_bpb", "date", "track")
REQUIRED_FIELDS_RULE = "PG102"

# R7: line cap of train_gpt.py (a convention, reported as info).
MAX_SOURCE_LINES = 1500

# R2/R3: the wallclock stop is checked once per step, so a run overshoots the cap by up to a
# step; maintainers accepted such runs. Over the cap by at most this much is a note.
TIME_TOLERANCE_S = 5.0

# A per-seed claim rounded to 4 decimals still identifies its log.
CLAIM_MATCH_TOLERANCE = 6e-5

# R6 statistics.
MIN_SEEDS = 3
MEAN_TOLERANCE = 1e-4
STD_TOLERANCE = 1e-4
# Hyperparameter keys that may differ between the seeds of one claim.
PER_SEED_KEYS = frozenset(
    {
        "SEED",
        "RUN_ID",
        "RUNID",
        "LOGFILE",
        "LOG_FILE",
        "ARTIFACT_DIR",
        "OUT_DIR",
        "OUTPUT_DIR",
        "MODEL_PATH",
        "LOG_PATH",
        "RANK",
        "LOCAL_RANK",
        "MASTER_PORT",
        "TIMESTAMP",
        "RUN_NAME",
        "CHECKPOINT_DIR",
        "SAVE_PATH",
        "QUANTIZED_MODEL_PATH",
        "STEP",
        "STEPS",
        "VAL_BPB",
        "VAL_LOSS",
        "TRAIN_LOSS",
    }
)
# Substrings of per-run keys (paths, ids, timing) that are not configuration.
PER_SEED_KEY_PARTS = (
    "SEED", "RUN_ID", "_PATH", "_DIR", "LOGFILE", "TIMESTAMP", "PORT", "TIME", "ELAPSED",
    "SECONDS", "TOTAL", "MEMORY", "TOK_S", "THROUGHPUT",
)  # fmt: skip
# Values that are measurements, not configuration (durations, sizes).
MEASURED_VALUE = re.compile(r"^[-+]?\d+(\.\d+)?\s*(ms|s|m|h|min|MiB|GiB|MB|GB|%|tok/s)$", re.I)

# R8: a log that looks like a training log (any of these anywhere in the first MiB).
LOG_SIGNATURES: tuple[re.Pattern[str], ...] = (
    re.compile(r"val_bpb[:=\s]"),
    re.compile(r"train_loss[:=\s]"),
    re.compile(r"^step:\d+", re.M),
    re.compile(r"^={100}$", re.M),
)
LOG_SIGNATURE_WINDOW = 1 << 20

# Evidence lines in logs (the last match is quoted): artifact size (PG201), train time
# (PG211), eval time (PG212). Tried in order; the first pattern with a match wins.
SIZE_LINES = (re.compile(r"Total submission size|^budget:|^artifact_bytes:", re.I),)
TRAIN_TIME_LINES = (
    re.compile(r"train_time_total[:=]"),
    re.compile(r"^stopping_early\b"),
    re.compile(r"train_time[:=]"),
)
EVAL_TIME_LINES = (
    re.compile(r"eval_time_total[:=]|total_eval_time[:=]"),
    re.compile(r"val_bpb[:=].*eval_time[:=]|eval_time[:=].*val_bpb[:=]"),
)

# R2: timed work logged between the end of the training loop and the artifact (GPTQ
# calibration, pre-quant fine-tuning, table building) counts towards the 600 s (PG213).
TRAIN_STOP_LINE = re.compile(
    r"^stopping_early\b|^step:\d+\s*/\s*\d+.*train_loss|^\d+\s*/\s*\d+\s+train_loss"
)
ARTIFACT_LINE = re.compile(r"^Serialized model|Total submission size", re.I)
# Lines that are not training work: diagnostic evaluations, the serialization itself.
# Cumulative clocks (wallclock, budget, total_elapsed) would count the loop twice.
NOT_TRAIN_WORK = re.compile(
    r"val_bpb|val_loss|eval_time|seriali[sz]|compress|code size|wallclock|budget|total_elapsed",
    re.I,
)
PHASE_DURATION = re.compile(
    r"(?:\bin|\btook|time|elapsed)\s*[=:]?\s*(\d+(?:\.\d+)?)\s*(ms|s)\b", re.I
)

# C2: the score is bits per UTF-8 byte of the validation split, so `val_bpb = val_loss / ln 2 *
# tokens / bytes` with `bytes` the split's own byte count, whatever the tokenizer. The logs
# (val_loss, val_bpb, val tokens) of each of the ~60 valid record folders checked give
# 151.07-151.08 M bytes (sp1024, sp4096, sp8192, CaseOps with byte sidecars alike); the first
# data release (2026-03-17, 63.78 M sp1024 tokens) had 155.77 M. A byte count more than 1% off
# reports a wrong score (PG115).
VAL_SPLIT_BYTES: tuple[int, ...] = (151_080_000, 155_770_000)
VAL_BYTES_TOLERANCE = 0.01
VAL_TOKENS_LINE = re.compile(r"\bval_tokens[:=]\s*(\d+)|^val_loader:.*\btokens:\s*(\d+)")

# R8: how the log reports its compressed code size (code counted at its packed size).
COMPRESSED_CODE_LINE = re.compile(r"code size \(compressed\)[^0-9]*(\d+)\s*bytes", re.I)
UNCOMPRESSED_CODE_LINE = re.compile(r"code size(?: \(uncompressed\))?:\s*(\d+)\s*bytes", re.I)

# R1: calls that reach the network or download files. (module or call, what it is)
NETWORK_CALLS: tuple[str, ...] = (
    "urllib.request.urlopen",
    "urllib.request.urlretrieve",
    "urlopen",
    "urlretrieve",
    "requests.get",
    "requests.post",
    "requests.request",
    "httpx.get",
    "hf_hub_download",
    "snapshot_download",
    "huggingface_hub.hf_hub_download",
    "huggingface_hub.snapshot_download",
    "load_dataset",
    "datasets.load_dataset",
    "torch.hub.load",
    "torch.hub.download_url_to_file",
    "socket.create_connection",
    "http.client.HTTPConnection",
    "http.client.HTTPSConnection",
    "wget.download",
)
NETWORK_SHELL = re.compile(r"\b(wget|curl)\s+\S*https?://|\bgit\s+clone\b|\bpip\s+install\b")

# R9: shard header.
SHARD_MAGIC = 20240520
SHARD_VERSION = 1
SHARD_HEADER_INTS = 256

# Folder collection limits (hostile folders): bytes read as text per file, bytes hashed.
MAX_TEXT_BYTES = 64 << 20
# A submission.json is a few kB; anything beyond this is not read.
MAX_SUBMISSION_BYTES = 4 << 20
# Python files larger than this are analysed only up to it (a real train_gpt.py is < 1 MB).
MAX_SOURCE_BYTES = 16 << 20
BINARY_SUFFIXES = frozenset(
    {".bin", ".pt", ".ptz", ".pth", ".npy", ".npz", ".mp4", ".png", ".jpg", ".jpeg", ".gif",
     ".pdf", ".zip", ".gz", ".xz", ".lzma", ".zst", ".tar", ".so", ".model", ".safetensors",
     ".pkl", ".whl"}
)  # fmt: skip
# A folder's own hand-written audit (an input, never overwritten by default).
SELF_AUDIT_NAMES = ("LEGALITY_AUDIT.md", "STATIC_AUDIT_NOTES.md", "LEGALITY.md", "COMPLIANCE.md")
SELF_AUDIT_LEGAL = re.compile(
    r"\b(likely legal|legal|compliant|submittable|no (?:rule )?violations?|valid)\b", re.I
)
# Under a "Verdict"/"Conclusion" heading a bare "pass" is a conclusion too.
SELF_AUDIT_PASS = re.compile(r"\b(pass(?:es|ed)?|ok)\b", re.I)
SELF_AUDIT_NEGATED = re.compile(
    r"\b(illegal|invalid|not (?:likely )?(?:legal|compliant|valid|submittable)|fails?|violates)\b",
    re.I,
)
