"""pgolf.submission: lenient reading of legacy spellings, strict schema, atomic writing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgolf.errors import InputError
from pgolf.submission import (
    normalize_track,
    read_submission,
    schema,
    strict_view,
    track_of_path,
    validate,
    write_submission,
)

VALID = {
    "author": "Ada",
    "github_id": "ada",
    "name": "TinyIdea",
    "val_bpb": 1.2345,
    "date": "2026-05-01",
    "track": "track_10min_16mb",
    "val_loss": 2.0,
    "bytes_total": 15_999_000,
    "bytes_code": 48_000,
    "seeds": [42, 314, 999],
    "seed_results": {
        "42": {
            "val_bpb": 1.2344,
            "val_loss": 2.0,
            "bytes_total": 15_999_000,
            "train_time_s": 599.8,
        },
        "314": {"val_bpb": 1.2345, "eval_time_s": 30.5},
        "999": {"val_bpb": 1.2346},
    },
    "val_bpb_std": 0.0001,
    "hardware": "8xH100 80GB SXM",
}


def _write(tmp_path: Path, content: str | dict, folder: str = "x") -> Path:
    path = tmp_path / folder / "submission.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_schema_is_draft_2020_12_and_requires_the_rule_fields() -> None:
    published = schema()
    assert published["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(published["required"]) == {"author", "github_id", "name", "val_bpb", "date", "track"}
    assert published["properties"]["track"]["enum"] == ["track_10min_16mb", "track_non_record_16mb"]


def test_valid_submission_validates_and_round_trips(tmp_path: Path) -> None:
    assert validate(VALID) == []
    path = tmp_path / "submission.json"
    write_submission(path, VALID)
    assert json.loads(path.read_text()) == VALID
    data, problems = read_submission(path)
    assert problems == []
    assert strict_view(data) == VALID
    assert not list(tmp_path.glob(".submission.json.*"))


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"track": "10min_16mb"}, "track"),
        ({"val_bpb": "1.2"}, "val_bpb"),
        ({"date": "May 1st"}, "date"),
        ({"seeds": [42, 42]}, "seeds"),
        ({"unknown_key": 1}, "unknown_key"),
        ({"seed_results": {"42": {"val_loss": 2.0}}}, "seed_results/42"),
        ({"seed_results": {"abc": {"val_bpb": 1.0}}}, "seed_results"),
        ({"bytes_total": 1.5}, "bytes_total"),
    ],
)
def test_strict_validation_names_the_offending_field(change: dict, fragment: str) -> None:
    problems = validate({**VALID, **change})
    assert problems and any(fragment in problem for problem in problems)


def test_missing_required_field_is_reported() -> None:
    data = {key: value for key, value in VALID.items() if key != "github_id"}
    assert any("github_id" in problem for problem in validate(data))


def test_write_refuses_invalid_data_and_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "submission.json"
    write_submission(path, VALID)
    with pytest.raises(InputError, match="not valid"):
        write_submission(path, {**VALID, "track": "nope"})
    assert json.loads(path.read_text()) == VALID


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("10min_16mb", "track_10min_16mb"),
        ("track_10min_16mb", "track_10min_16mb"),
        ("records/track_10min_16mb", "track_10min_16mb"),
        ("non-record-16mb", "track_non_record_16mb"),
        ("non_record_16mb", "track_non_record_16mb"),
        ("non_record", "track_non_record_16mb"),
        ("non-record-unlimited-compute-16mb", "track_non_record_16mb"),
        ("Track 10min 16MB", "track_10min_16mb"),
        ("something else", None),
        (None, None),
        (42, None),
    ],
)
def test_track_spellings(spelling: object, expected: str | None) -> None:
    assert normalize_track(spelling) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/r/records/track_non_record_16mb/2026-01-01_x", "track_non_record_16mb"),
        ("records/track_10min_16mb/2026-01-01_x", "track_10min_16mb"),
        # the innermost track folder wins; an unknown one is not a track
        ("/track_10min_16mb/records/track_non_record_16mb/x", "track_non_record_16mb"),
        ("/w/track_10min_16mb/track_ideas/x", "track_10min_16mb"),
        ("/home/me/my_record", None),
    ],
)
def test_track_of_path(path: str, expected: str | None) -> None:
    assert track_of_path(Path(path)) == expected


def test_legacy_keys_are_mapped(tmp_path: Path) -> None:
    legacy = {
        "author": "Bob",
        "github_id": "bob",
        "name": "Legacy",
        "date": "2026-05-01T03:39:42Z",
        "mean_val_bpb": 0.97271454,
        "std_bpb": 0.00089703,
        "artifact_bytes_max": 15_999_539,
        "code_bytes": 41_999,
        "gpu": "8xH100",
        "track": "10min_16mb",
        "val_bpb_by_seed": {"42": 0.97234287, "314": 0.97206308},
        "train_time_ms_by_seed": {"42": 599843, "314": 599586},
        "bytes_total_by_seed": {"42": 15_997_180},
        "config": {"PPM_ENABLED": "1"},
    }
    data, problems = read_submission(_write(tmp_path, legacy))
    assert problems == []
    assert data["val_bpb"] == 0.97271454
    assert data["val_bpb_std"] == 0.00089703
    assert data["bytes_total"] == 15_999_539
    assert data["bytes_code"] == 41_999
    assert data["hardware"] == "8xH100"
    assert data["track"] == "track_10min_16mb"
    assert data["seeds"] == [42, 314]
    assert data["seed_results"]["42"] == {
        "val_bpb": 0.97234287,
        "train_time_s": 599.843,
        "bytes_total": 15_997_180,
    }
    # Keys the schema does not know are kept for the reader but left out of the strict view.
    assert data["config"] == {"PPM_ENABLED": "1"}
    assert validate(strict_view(data)) == []


def test_seed_dict_and_per_seed_aliases(tmp_path: Path) -> None:
    raw = {
        **{k: VALID[k] for k in ("author", "github_id", "name", "val_bpb", "date")},
        "seeds": {"42": {"val_bpb": 1.1, "artifact_bytes": 15_000_000, "train_time_ms": 590000}},
        "seed_results": {"7": {"val_bpb": 1.2, "eval_time_seconds": 40}},
    }
    data, problems = read_submission(_write(tmp_path, raw, "records/track_non_record_16mb/x"))
    assert problems == []
    assert data["track"] == "track_non_record_16mb"  # from the folder path
    assert data["seeds"] == [7, 42]
    assert data["seed_results"]["42"] == {
        "val_bpb": 1.1,
        "bytes_total": 15_000_000,
        "train_time_s": 590.0,
    }
    assert data["seed_results"]["7"] == {"val_bpb": 1.2, "eval_time_s": 40.0}


def test_numbers_written_as_strings_are_read_with_a_problem(tmp_path: Path) -> None:
    data, problems = read_submission(_write(tmp_path, {**VALID, "val_bpb": "0.9300"}))
    assert data["val_bpb"] == pytest.approx(0.93)
    assert any("val_bpb" in problem and "str" in problem for problem in problems)


def test_invalid_json_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    data, problems = read_submission(_write(tmp_path, '{"author": "x", "val_bpb": 1.0,}'))
    assert data == {}
    assert len(problems) == 1 and "invalid JSON" in problems[0]
    data, problems = read_submission(_write(tmp_path, "[1, 2]"))
    assert "not an object" in problems[0]


def test_missing_fields_are_listed(tmp_path: Path) -> None:
    _, problems = read_submission(_write(tmp_path, {"author": "x"}))
    missing = {problem for problem in problems if "missing" in problem}
    assert len(missing) == 5


def test_unreadable_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        read_submission(tmp_path / "nope.json")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
keys = st.sampled_from(
    ["author", "seeds", "seed_results", "track", "val_bpb", "bytes_total", "val_bpb_by_seed", "x"]
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(keys, json_values, max_size=8))
def test_arbitrary_json_never_raises(tmp_path_factory: pytest.TempPathFactory, raw: dict) -> None:
    path = tmp_path_factory.mktemp("sub") / "submission.json"
    path.write_text(json.dumps(raw))
    data, problems = read_submission(path)
    assert isinstance(problems, list)
    validate(strict_view(data))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("sub") / "submission.json"
    path.write_bytes(raw)
    read_submission(path)


def test_atomic_write_gives_an_ordinary_file_mode(tmp_path: Path) -> None:
    """Written files are readable like any other (umask applies), not private temp files."""
    from pgolf.submission import atomic_write_text

    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "run.json", "{}\n")
        (tmp_path / "old.json").write_text("x")
        (tmp_path / "old.json").chmod(0o640)
        atomic_write_text(tmp_path / "old.json", "{}\n")
    finally:
        os.umask(umask)
    assert (tmp_path / "run.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "old.json").stat().st_mode & 0o777 == 0o640  # an existing mode is kept


def test_fifo_and_huge_files_are_never_read_whole(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo" / "submission.json"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=r"submission\.json: cannot read \(not a regular file\)"):
        read_submission(fifo)
    huge = tmp_path / "submission.json"
    with huge.open("wb") as f:
        f.truncate(3 << 30)  # sparse: no disk used
    data, problems = read_submission(huge)
    assert data == {} and "too large for a submission.json" in problems[0]
