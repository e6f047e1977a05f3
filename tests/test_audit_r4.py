"""R4/R5 rules (PG301-PG306): val data shaping the artifact is found by data flow, not names."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from audit.engine import audit_folder, audit_source

HEAD = """
import glob, os
import torch
import torch.nn.functional as F

class Hyperparameters:
    data_path = os.environ.get("DATA_PATH", "./data")
    train_files = os.path.join(data_path, "fineweb_train_*.bin")
    val_files = os.path.join(data_path, "fineweb_val_*.bin")

def load(pattern):
    return torch.cat([torch.load(f) for f in sorted(glob.glob(pattern))])

def calibrate(model, batches):
    stats = {}
    model.register_forward_hook(lambda m, i, o: stats.update(h=i[0].T @ i[0]))
    with torch.no_grad():
        for b in batches:
            model(b)
    return stats
"""


def _audit(main_body: str):
    src = textwrap.dedent(HEAD) + textwrap.dedent(main_body)
    src += '\nif __name__ == "__main__":\n    main()\n'
    found = [f for f in audit_source(src, select=["PG3"]) if f.rule.startswith("PG3")]
    return src, found


def _line(src: str, text: str) -> int:
    return next(i for i, line in enumerate(src.splitlines(), 1) if text in line)


def test_val_tensor_under_a_train_name_reaching_calibration_is_flagged():
    src, found = _audit(
        """
def main():
    args = Hyperparameters()
    train_batches = load(args.val_files).split(256)
    model = torch.nn.Linear(256, 256)
    stats = calibrate(model, train_batches)
    torch.save({"w": model.state_dict(), "s": stats}, "final_model.int6.ptz")
"""
    )
    assert [(f.rule, f.line) for f in found] == [("PG302", _line(src, "stats = calibrate"))]
    assert found[0].condition == "R4" and found[0].function == "main"
    assert "calibrate" in found[0].message


def test_calibration_on_train_and_val_monitoring_pass():
    _, found = _audit(
        """
def main():
    args = Hyperparameters()
    val = load(args.val_files)
    model = torch.nn.Linear(256, 256)
    for step in range(10):
        loss = F.cross_entropy(model(load(args.train_files)), torch.zeros(1))
        loss.backward()
        if step % 5 == 0:
            with torch.no_grad():
                print("val_loss", F.cross_entropy(model(val), torch.zeros(1)).item())
    stats = calibrate(model, load(args.train_files).split(256))
    torch.save({"w": model.state_dict(), "s": stats}, "final_model.int6.ptz")
    model.load_state_dict(torch.load("final_model.int6.ptz")["w"])
"""
    )
    assert found == []


def test_temperature_fitted_by_gradient_on_val_before_saving_is_pg301():
    src, found = _audit(
        """
def fit_temperature(model, data):
    t = torch.ones(1, requires_grad=True)
    opt = torch.optim.LBFGS([t])
    loss = F.cross_entropy(model(data[:-1]) / t, data[1:])
    loss.backward()
    opt.step()
    return t.detach()

def main():
    args = Hyperparameters()
    model = torch.nn.Linear(256, 256)
    temp = fit_temperature(model, load(args.val_files))
    torch.save({"w": model.state_dict(), "t": temp}, "final_model.ptz")
"""
    )
    assert ("PG301", _line(src, "loss.backward()")) in {(f.rule, f.line) for f in found}


def test_val_selection_with_break_is_pg304_but_printing_is_not():
    src, found = _audit(
        """
def main():
    args = Hyperparameters()
    val = load(args.val_files)
    model = torch.nn.Linear(256, 256)
    prev = 1e9
    for step in range(100):
        with torch.no_grad():
            cur = F.cross_entropy(model(val), torch.zeros(1)).item()
        print("val", cur)
        if cur > prev:
            break
        prev = cur
    torch.save(model.state_dict(), "final_model.ptz")
"""
    )
    assert [(f.rule, f.line) for f in found] == [("PG304", _line(src, "if cur > prev"))]


def _folder(tmp_path: Path, readme: str) -> Path:
    (tmp_path / "train_gpt.py").write_text("print('hi')\n")
    (tmp_path / "README.md").write_text(readme)
    (tmp_path / "submission.json").write_text(json.dumps({"name": "x"}))
    return tmp_path


def test_readme_linking_val_shard_as_train_is_pg306(tmp_path):
    folder = _folder(
        tmp_path,
        "# run\n\nln -sf $D/fineweb_val_000000.bin $E/fineweb_train_000000.bin\n",
    )
    found = [f for f in audit_folder(folder, select=["PG306"]).findings if f.rule == "PG306"]
    assert [(f.file, f.line) for f in found] == [("README.md", 3)]


def test_train_files_setting_pointing_at_val_is_pg306(tmp_path):
    folder = _folder(tmp_path, "TRAIN_FILES=./data/fineweb_val_*.bin python train_gpt.py\n")
    found = [f for f in audit_folder(folder, select=["PG306"]).findings if f.rule == "PG306"]
    assert len(found) == 1 and "TRAIN_FILES" in found[0].message


def test_grid_searched_temperature_chosen_on_val_is_pg304():
    src, found = _audit(
        """
def nll(model, tokens, t):
    with torch.no_grad():
        return F.cross_entropy(model(tokens[:-1]) / t, tokens[1:]).item()

def main():
    args = Hyperparameters()
    model = torch.nn.Linear(256, 256)
    holdout = load(args.val_files)
    best, best_t = 1e9, 1.0
    for t in (0.8, 0.9, 1.0, 1.1):
        loss = nll(model, holdout, t)
        if loss < best:
            best, best_t = loss, t
    torch.save({"w": model.state_dict(), "t": best_t}, "final_model.ptz")
"""
    )
    assert [(f.rule, f.line) for f in found] == [("PG304", _line(src, "if loss < best"))]


def test_temperature_fitted_by_a_closure_over_val_and_stored_is_pg303():
    src, found = _audit(
        """
from scipy.optimize import minimize_scalar

def main():
    args = Hyperparameters()
    model = torch.nn.Linear(256, 256)
    v = load(args.val_files)
    res = minimize_scalar(lambda t: F.cross_entropy(model(v[:-1]) / t, v[1:]).item())
    torch.save({"w": model.state_dict(), "t": res.x}, "final_model.ptz")
"""
    )
    assert [(f.rule, f.line) for f in found] == [("PG303", _line(src, "torch.save("))]


def test_train_files_configured_to_val_shards_taints_the_training_loader():
    src = textwrap.dedent(
        """
        import glob, os
        import torch
        import torch.nn.functional as F

        class Hyperparameters:
            train_files = os.environ.get("TRAIN_FILES", "./data/fineweb_train_*.bin")

        def main():
            args = Hyperparameters()
            tokens = torch.load(sorted(glob.glob(args.train_files))[0])
            model = torch.nn.Linear(256, 256)
            loss = F.cross_entropy(model(tokens[:-1]), tokens[1:])
            loss.backward()
            torch.save(model.state_dict(), "final_model.ptz")

        if __name__ == "__main__":
            main()
        """
    )
    bad = audit_source(src, config={"TRAIN_FILES": "./data/fineweb_val_*.bin"}, select=["PG301"])
    assert [(f.rule, f.line) for f in bad] == [("PG301", _line(src, "loss.backward()"))]
    assert audit_source(src, select=["PG301"]) == []


def test_einsum_second_moments_on_val_are_calibration():
    src, found = _audit(
        """
def hessian(model, xs):
    H = 0
    for x in xs:
        H = H + torch.einsum("bi,bj->ij", x, x)
    return H

def main():
    args = Hyperparameters()
    model = torch.nn.Linear(256, 256)
    H = hessian(model, load(args.val_files).split(256))
    torch.save({"w": model.state_dict(), "H": H}, "final_model.int6.ptz")
"""
    )
    assert ("PG302", _line(src, "H = hessian(")) in {(f.rule, f.line) for f in found}


def test_diagnostic_probe_trained_on_val_features_is_not_adaptation():
    src, found = _audit(
        """
def diagnostics(model, val_tokens):
    with torch.no_grad():
        h = model(val_tokens[:-1].float())
    probe = torch.nn.Linear(256, 1024)
    opt = torch.optim.Adam(probe.parameters(), lr=1e-3)
    loss = F.cross_entropy(probe(h), val_tokens[1:])
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()

def main():
    args = Hyperparameters()
    model = torch.nn.Linear(256, 256)
    print("probe_bpb", diagnostics(model, load(args.val_files)))
    torch.save(model.state_dict(), "final_model.ptz")
"""
    )
    assert found == []
    assert [f for f in audit_source(src, select=["PG6"]) if f.rule.startswith("PG6")] == []


def test_val_data_object_handed_to_calibration_is_pg302():
    src, found = _audit(
        """
class ValidationData:
    def __init__(self, args):
        self.val_tokens = load(args.val_files)

def collect(model, val_data, n=4):
    stats = {}
    model.register_forward_hook(lambda m, i, o: stats.update(h=i[0].T @ i[0]))
    with torch.no_grad():
        for b in val_data.val_tokens.split(256)[:n]:
            model(b)
    return stats

def serialize(model, val_data=None):
    stats = collect(model, val_data)
    torch.save({"w": model.state_dict(), "s": stats}, "final_model.int6.ptz")

def main():
    args = Hyperparameters()
    serialize(torch.nn.Linear(256, 256), val_data=ValidationData(args))
"""
    )
    assert ("PG302", _line(src, "stats = collect(")) in {(f.rule, f.line) for f in found}


FILL_TABLE = {
    "index_put_": "table.index_put_((t[:-1], t[1:]), torch.ones(len(t) - 1), accumulate=True)",
    "subscript +=": "table[t[:-1], t[1:]] += 1",
    "scatter_add_": "table[0].scatter_add_(0, t[1:], torch.ones(len(t) - 1))",
}


@pytest.mark.parametrize("fill", sorted(FILL_TABLE))
@pytest.mark.parametrize("split", ["val", "train"])
def test_a_table_filled_in_place_from_val_and_stored_is_pg303(fill: str, split: str):
    # the table is written at val-derived positions (the value written is a constant)
    src, found = _audit(
        f"""
def counts(t):
    table = torch.zeros(1024, 1024)
    {FILL_TABLE[fill]}
    return table

def main():
    args = Hyperparameters()
    model = torch.nn.Linear(256, 256)
    tokens = load(args.{split}_files)
    torch.save({{"w": model.state_dict(), "bigram": counts(tokens)}}, "final_model.ptz")
"""
    )
    expected = [("PG303", _line(src, "torch.save("))] if split == "val" else []
    assert [(f.rule, f.line) for f in found] == expected
