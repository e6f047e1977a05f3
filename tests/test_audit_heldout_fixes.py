"""Mechanisms the fresh held-out set showed missing: severities and folder-level cases that
the one-file rule fixtures cannot express (marks carry no severity, a README is a folder)."""

from __future__ import annotations

from pathlib import Path

from audit.context import build_context
from audit.engine import audit_folder, audit_source
from audit.model import Severity
from audit.readme_blocks import readme_block_settings

FIXTURES = Path(__file__).parent / "fixtures" / "rules"


def _severities(text: str, rule: str) -> set[Severity]:
    return {f.severity for f in audit_source(text) if f.rule == rule}


def test_non_causal_pooling_in_a_causal_model_is_an_error() -> None:
    text = (FIXTURES / "PG401_illegal.py").read_text()
    causal = text.replace(
        "y = F.scaled_dot_product_attention(q, k, v, is_causal=False)  # [PG401]",
        "y = F.scaled_dot_product_attention(q, k, v, is_causal=True)",
    )
    assert causal != text
    assert _severities(causal, "PG401") == {Severity.ERROR}


def test_bidirectional_model_alone_stays_a_warning() -> None:
    # no causal attention anywhere: a masked-input (diffusion) scorer is possible, so review
    text = (FIXTURES / "PG401_illegal.py").read_text()
    assert _severities(text, "PG401") == {Severity.WARNING}


_TRAINER = """import glob
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

data_path = os.environ.get("DATA_PATH", "./data")
train_files = os.environ.get("TRAIN_FILES", os.path.join(data_path, "fineweb_train_*.bin"))
val_files = os.path.join(data_path, "fineweb_val_*.bin")


def load_tokens(pattern):
    files = sorted(glob.glob(pattern))
    arrays = [np.fromfile(f, dtype="<u2", offset=1024) for f in files]
    return torch.from_numpy(np.concatenate(arrays).astype(np.int64))


def main():
    model = nn.Embedding(1024, 1024)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    train = load_tokens(train_files)
    for step in range(10):
        x, y = train[step * 64 : step * 64 + 64], train[step * 64 + 1 : step * 64 + 65]
        F.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()
    torch.save(model.state_dict(), "final_model.pt")
    val = load_tokens(val_files)
    with torch.no_grad():
        print("val_loss", F.cross_entropy(model(val[:-1]), val[1:]).item())


if __name__ == "__main__":
    main()
"""

_CONFIG_README = """# Run

Configuration:

```bash
TRAIN_FILES={train}
NUM_LAYERS=11
# the rest is the baseline's
```
"""


def _config_folder(tmp_path: Path, train: str) -> Path:
    folder = tmp_path / "record"
    folder.mkdir()
    (folder / "train_gpt.py").write_text(_TRAINER)
    (folder / "README.md").write_text(_CONFIG_README.format(train=train))
    return folder


def test_readme_block_of_assignments_is_the_run_configuration(tmp_path: Path) -> None:
    folder = _config_folder(tmp_path, "./data/fineweb_val_*.bin")
    ctx = build_context(folder)
    assert ctx.config["TRAIN_FILES"] == "./data/fineweb_val_*.bin"
    assert ctx.config_origin["TRAIN_FILES"] == "README settings"
    r4 = {f.rule for f in audit_folder(folder).findings if f.condition == "R4" and _error(f)}
    assert r4, "training on the val glob set by the README block is not reported"


def test_readme_block_pointing_at_train_shards_passes(tmp_path: Path) -> None:
    folder = _config_folder(tmp_path, "./data/fineweb_train_*.bin")
    assert not [f for f in audit_folder(folder).findings if f.condition == "R4" and _error(f)]


def test_readme_blocks_with_other_lines_or_conflicting_values_are_not_configuration() -> None:
    script = "```bash\nTRAIN_FILES=a.bin\ncd /data && ls\n```\n"
    assert readme_block_settings(script) == {}
    variants = "```bash\nLAYERS=9\nSEED=1\n```\n\n```sh\nexport LAYERS=11\nSEED=1\n```\n"
    assert readme_block_settings(variants) == {"SEED": "1"}
    python = "```python\nTRAIN_FILES = 'x'\n```\n"
    assert readme_block_settings(python) == {}


def _error(f) -> bool:
    return f.severity == Severity.ERROR and not f.suppressed


def test_one_line_packed_helper_is_not_a_packing_problem(tmp_path: Path) -> None:
    import base64
    import shutil
    import zlib

    folder = tmp_path / "record"
    shutil.copytree(FIXTURES.parent / "audit" / "clean_record", folder)
    inner = "def lr_at(step, total):\n    return 0.04 * (1 - step / total)\n"
    enc = base64.b85encode(zlib.compress(inner.encode()))
    (folder / "schedule.py").write_text(
        f"import zlib,base64;exec(zlib.decompress(base64.b85decode({enc!r})))\n"
    )
    assert not [f for f in audit_folder(folder).findings if f.rule == "PG105"]
