"""pgolf.logs: every historical log shape, the bundled trainer's log, and hostile input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgolf.errors import InputError
from pgolf.logs import (
    MAX_LINE_CHARS,
    SEPARATOR,
    parse_log,
    parse_log_text,
    parse_progress,
    seed_from_filename,
)

FIXTURES = Path(__file__).parent / "fixtures" / "logs"


def test_baseline_log_takes_last_exact_metric_and_last_size_line() -> None:
    log = parse_log(FIXTURES / "baseline_train.log")
    assert log.val_bpb == pytest.approx(1.22436570)
    assert log.val_loss == pytest.approx(2.07269931)
    assert log.metric_name == "final_int8_zlib_roundtrip_exact"
    # The first "Total submission size" line is the raw model; the artifact is the last one.
    assert log.bytes_total == 15863489
    assert log.bytes_model == 15815847
    assert log.bytes_code == 47642
    assert log.seed == 1337
    assert log.steps == 13780
    assert log.total_steps == 20000
    assert log.train_time_s == pytest.approx(600.038)
    # The _exact line has no eval_time; it repeats the line above, which does.
    assert log.eval_time_s == pytest.approx(1.401)
    assert log.embedded_source is not None
    assert "def main():" in log.embedded_source
    assert log.source_end_line == log.embedded_source.count("\n") + 2
    assert log.hyperparams["iterations"] == "20000"
    assert log.hyperparams["max_wallclock_seconds"] == "600.000"
    assert log.warnings == []


def test_monitoring_val_lines_are_not_metrics() -> None:
    log = parse_log(FIXTURES / "baseline_train.log")
    names = [metric.name for metric in log.metrics]
    assert names == ["final_int8_zlib_roundtrip", "final_int8_zlib_roundtrip_exact"]
    # The f-string in the embedded source must not be read as a metric either.
    assert all(metric.line > (log.source_end_line or 0) for metric in log.metrics)


def test_hyperparameter_block_and_source_code_block() -> None:
    log = parse_log(FIXTURES / "full_seed42.txt")
    assert log.seed == 42
    assert log.hyperparams["ppm_enabled"] == "True"
    assert log.hyperparams["adam_eps"] == "1e-08"
    assert log.embedded_source is not None
    assert log.embedded_source.startswith('"""Tiny stand-in trainer')
    assert log.metric_name == "ppm_sliding"
    assert log.val_bpb == pytest.approx(0.97234287)
    assert log.val_loss == pytest.approx(2.45118426)
    assert log.eval_time_s == pytest.approx(502.131)
    assert log.train_time_s == pytest.approx(599.843)
    assert log.steps == 2014
    assert log.bytes_total == 15997180
    # When both are printed, the compressed code size is what the total counts.
    assert log.bytes_code == 41999
    assert log.bytes_model == 15955181
    ppm_mixer = [metric for metric in log.metrics if metric.name == "ppm_mixer"]
    assert ppm_mixer and ppm_mixer[0].val_loss is None


def test_key_equals_value_dump_budget_line_and_seed_from_file_name() -> None:
    log = parse_log(FIXTURES / "ternary_log_7.txt")
    assert log.seed == 7
    assert log.hyperparams["sliding_eval_stride"] == "16"
    assert log.bytes_total == 15993853
    assert log.metric_name == "final_sliding"
    assert log.val_bpb == pytest.approx(1.1565)
    assert log.eval_time_s == pytest.approx(429.311)
    assert log.train_time_s == pytest.approx(599.652)
    assert log.steps == 6530


def test_timestamp_prefixes_and_total_eval_time() -> None:
    log = parse_log(FIXTURES / "train_seed314.log")
    assert log.seed == 314
    assert log.metric_name == "quantized_ttt_phased"
    assert log.val_bpb == pytest.approx(1.07216564)
    assert log.eval_time_s == pytest.approx(512.4)
    assert log.train_time_s == pytest.approx(596.103)
    assert log.bytes_total == 15932307
    assert log.bytes_code == 28320


def test_bundled_trainer_log_shape() -> None:
    log = parse_log(FIXTURES / "pgolf_train_seed999.log")
    assert log.seed == 999
    assert log.metric_name == "final_int8_zstd_roundtrip_exact"
    assert log.val_bpb == pytest.approx(2.4321)
    assert log.val_loss == pytest.approx(4.1234)
    assert log.train_time_s == pytest.approx(24.31)
    assert log.eval_time_s == pytest.approx(5.23)
    assert log.bytes_total == 853579
    assert log.bytes_model == 812345
    assert log.bytes_code == 41234
    assert log.steps == 200
    assert log.last_train_loss == pytest.approx(4.1)
    assert log.hyperparams["ppm_enabled"] == "0"


def test_truncated_log_has_no_metric_and_says_so() -> None:
    log = parse_log(FIXTURES / "truncated_seed7.log")
    assert log.val_bpb is None
    assert log.metric_name is None
    assert log.seed == 7
    assert log.steps == 600
    assert log.train_time_s == pytest.approx(17.4)
    assert any("no final val_bpb" in warning for warning in log.warnings)


def test_summary_block_repeats_the_final_score() -> None:
    log = parse_log(FIXTURES / "summary_block.log")
    assert log.val_bpb == pytest.approx(1.12356596)
    assert log.val_loss == pytest.approx(1.89708903)
    assert log.bytes_total == 15586805
    assert log.seed == 2024


def test_seed_from_file_name_variants() -> None:
    assert seed_from_filename("train_seed42.log") == 42
    assert seed_from_filename("train_seed_1337.txt") == 1337
    assert seed_from_filename("ternary_log_999.txt") == 999
    assert seed_from_filename("train_seed1234_rerun.log") == 1234
    assert seed_from_filename("train.log") is None


def test_dump_and_file_name_seed_disagreement_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "train_seed0.log"
    path.write_text("seed:1337\nfinal_x_exact val_loss:2.0 val_bpb:1.0\n")
    log = parse_log(path)
    assert log.seed == 1337
    assert any("differs" in warning for warning in log.warnings)


def test_progress_lines() -> None:
    progress = parse_progress("step:200/20000 train_loss:2.8000 train_time:8700ms step_avg:43.50ms")
    assert progress is not None
    assert (progress.step, progress.total, progress.train_loss) == (200, 20000, 2.8)
    assert progress.train_time_s == pytest.approx(8.7)
    minutes = parse_progress("2000/20000 train_loss: 2.4834 train_time: 9.9m tok/s: 2643994")
    assert minutes is not None and minutes.train_time_s == pytest.approx(594.0)
    assert parse_progress("final_int8_zlib_roundtrip_exact val_loss:2 val_bpb:1") is None
    assert parse_progress("warmup_step:1/20") is None


def test_non_utf8_bytes_are_replaced(tmp_path: Path) -> None:
    path = tmp_path / "train_seed5.log"
    path.write_bytes(
        b"seed:5\n\xff\xfe\x00garbage \xc3\x28\nfinal_int8_zlib_roundtrip_exact "
        b"val_loss:2.00000000 val_bpb:1.10000000\n"
    )
    log = parse_log(path)
    assert log.val_bpb == pytest.approx(1.1)
    assert log.seed == 5


def test_overlong_line_is_cut_and_parsing_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "long.log"
    with path.open("wb") as handle:
        handle.write(b"seed:3\n")
        handle.write(b"x" * (MAX_LINE_CHARS * 5) + b"\n")
        handle.write(b"final_a_exact val_loss:3.00000000 val_bpb:1.50000000\n")
    log = parse_log(path)
    assert log.val_bpb == pytest.approx(1.5)
    assert log.n_lines == 3


def test_huge_source_is_capped(tmp_path: Path) -> None:
    from pgolf import logs

    path = tmp_path / "big.log"
    body = "import os\n" + "# filler line of source code\n" * 40000
    path.write_text(body + SEPARATOR + "\nfinal_a val_loss:1.0 val_bpb:0.5\n")
    original = logs.MAX_SOURCE_CHARS
    logs.MAX_SOURCE_CHARS = 100_000
    try:
        log = parse_log(path)
    finally:
        logs.MAX_SOURCE_CHARS = original
    assert log.val_bpb == 0.5
    # The preamble overflowed the cap, so the parser gave up treating it as source.
    assert log.embedded_source is None or len(log.embedded_source) <= 100_000


def test_unreadable_file_raises_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read log"):
        parse_log(tmp_path / "missing.log")
    with pytest.raises(InputError):
        parse_log(tmp_path)


def test_text_and_file_parsing_agree() -> None:
    path = FIXTURES / "full_seed42.txt"
    assert parse_log_text(path.read_text(), path) == parse_log(path)


def test_summary_dict_has_audit_run_keys() -> None:
    summary = parse_log(FIXTURES / "baseline_train.log").summary()
    assert set(summary) == {
        "log",
        "seed",
        "val_bpb",
        "val_loss",
        "bytes_total",
        "train_time_s",
        "eval_time_s",
    }


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_random_text_never_raises(text: str) -> None:
    log = parse_log_text(text)
    assert isinstance(log.warnings, list)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=4000))
def test_random_bytes_never_raise(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("garbage") / "g.log"
    path.write_bytes(data)
    parse_log(path)


finite = st.floats(min_value=0.0, max_value=100.0, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    loss=finite,
    bpb=finite,
    seed=st.integers(min_value=0, max_value=2**31),
    size=st.integers(min_value=0, max_value=10**9),
    noise=st.lists(st.text(alphabet="abc =:_0123456789\t", max_size=40), max_size=5),
)
def test_numbers_round_trip(
    loss: float, bpb: float, seed: int, size: int, noise: list[str]
) -> None:
    lines = [f"seed:{seed}", *noise, f"Total submission size int8+zlib: {size} bytes"]
    lines.append(f"final_int8_zlib_roundtrip_exact val_loss:{loss:.8f} val_bpb:{bpb:.8f}")
    log = parse_log_text("\n".join(lines))
    assert log.val_bpb == float(f"{bpb:.8f}")
    assert log.val_loss == float(f"{loss:.8f}")
    assert log.seed == seed
    assert log.bytes_total == size


def test_metric_names_stop_at_key_value_tokens() -> None:
    log = parse_log_text(
        "final_sliding_window_eval_exact stride:64 val_loss:1.96 val_bpb:1.16\n"
        "ttt_sliding:done val_loss=1.889768 val_bpb=1.119230 elapsed=409.8s\n"
        "FINAL_METRIC val_bpb: 1.10212542\n"
    )
    names = [metric.name for metric in log.metrics]
    assert names == ["final_sliding_window_eval_exact", "ttt_sliding:done", "FINAL_METRIC"]
    assert log.metrics[1].eval_time_s == pytest.approx(409.8)
    assert log.val_bpb == pytest.approx(1.10212542)


def test_big_log_is_parsed_in_bounded_memory(tmp_path: Path) -> None:
    import tracemalloc

    path = tmp_path / "big.log"
    noise = b"noise " + b"y" * 2000 + b"\n"
    with path.open("wb") as handle:
        handle.write(b"seed:9\n")
        for _ in range(12_000):  # ~24 MB, more than the embedded-source cap
            handle.write(noise)
        handle.write(b"final_a_exact val_loss:2.00000000 val_bpb:1.25000000\n")
    tracemalloc.start()
    try:
        log = parse_log(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert log.val_bpb == 1.25 and log.seed == 9
    assert peak < path.stat().st_size / 2


def test_launcher_warnings_before_the_source_are_not_source() -> None:
    log = parse_log(FIXTURES / "torchrun_seed3.log")
    assert log.embedded_source is not None
    assert log.embedded_source.startswith('"""A trainer launched by torchrun')
    assert log.source_start_line == 7
    assert log.source_end_line == 11
    assert log.seed == 3 and log.val_bpb == pytest.approx(1.2)


def test_key_values_after_training_started_are_not_configuration() -> None:
    log = parse_log_text(
        "seed:1\niterations:200\n"
        "step:1/200 train_loss:6.9 train_time:10ms step_avg:10.00ms\n"
        "train_loop_time:8224ms steps:200 tokens_per_s:249\n"
        "final_eval_mode:sliding_window stride:64\n"
        "final_x_exact val_loss:2.0 val_bpb:1.0\n"
    )
    assert log.hyperparams == {"seed": "1", "iterations": "200"}
    assert log.late_params["tokens_per_s"] == "249"
    assert log.late_params["final_eval_mode"] == "sliding_window"


def test_eval_time_of_an_alias_final_line_comes_from_the_line_it_repeats() -> None:
    log = parse_log_text(
        "final_int6_roundtrip val_loss:1.9216 val_bpb:1.1381 eval_time:7093ms\n"
        "final_int6_sliding_window val_loss:1.8816 val_bpb:1.1144 stride:64 eval_time:77178ms\n"
        "final_int6_sliding_window_exact val_loss:1.88156874 val_bpb:1.11437394\n"
        "final_int8_zlib_roundtrip_exact val_loss:1.88156874 val_bpb:1.11437394\n"
    )
    assert log.metric_name == "final_int8_zlib_roundtrip_exact"
    assert log.eval_time_s == pytest.approx(77.178)


def test_prefixed_eval_time_is_read() -> None:
    log = parse_log_text(
        "final_ngram val_loss:1.6279 val_bpb:0.9641 ngram_eval_time:890878ms\n"
        "final_ngram_exact val_loss:1.62788498 val_bpb:0.96412773\n"
    )
    assert log.eval_time_s == pytest.approx(890.878)


def test_sizes_inline_on_the_metric_line() -> None:
    log = parse_log_text(
        "final_int8_zlib_roundtrip model_bytes:11125178 code_bytes:64664 "
        "total_bytes:11189842 under_16mb:True val_bpb:1.2271\n"
    )
    assert (log.bytes_total, log.bytes_model, log.bytes_code) == (11189842, 11125178, 64664)
    assert log.val_bpb == pytest.approx(1.2271)


def test_a_fifo_log_raises_input_error_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "train_seed1.log"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=r"train_seed1\.log: cannot read log \(not a regular"):
        parse_log(fifo)


def test_sparse_huge_log_is_parsed_without_error(tmp_path: Path) -> None:
    path = tmp_path / "train_seed3.log"
    path.write_text("seed:3\nfinal_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:1.25\n")
    with path.open("r+b") as f:
        f.truncate(300 << 20)  # 300 MB of NUL bytes after the metric, no disk used
    log = parse_log(path)
    assert log.seed == 3 and log.val_bpb == 1.25
