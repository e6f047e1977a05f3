"""`pgolf data`: build the embedded default dataset, build one from the user's text, or check
a shard directory. Thin: options in, calls into pgolf.data, rendering out."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from pgolf.data import Dataset, build_dataset, build_default_dataset, default_dataset_dir
from pgolf.data.build import (
    DEFAULT_SHARD_TOKENS,
    DEFAULT_VAL_FRACTION,
    DEFAULT_VOCAB,
    input_fingerprint,
    rich_progress,
)
from pgolf.data.check import CheckReport, check_dir
from pgolf.data.corpus import default_corpus_description, default_documents, text_documents
from pgolf.errors import InputError, PgolfError


@click.command("data")
@click.option(
    "--vocab-size",
    type=click.IntRange(260, 65536),
    default=DEFAULT_VOCAB,
    show_default=True,
    help="Size of the sentencepiece BPE vocabulary to train.",
)
@click.option(
    "--from-text",
    "from_text",
    type=click.Path(path_type=Path),
    multiple=True,
    show_default="the embedded corpus",
    help="Build from your own UTF-8 text instead of the embedded corpus. One FILE: its "
    "blank-line-separated paragraphs are the documents. Several FILES or a DIR (searched "
    "recursively for .txt/.md/.rst/.text files): each file is one document. Extra paths "
    "after the option are taken too (--from-text a.txt b.txt).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    show_default="<cache>/default_sp<V> or <cache>/text_<hash>_sp<V>",
    help="Directory to build the dataset in.",
)
@click.option(
    "--check",
    "check",
    type=click.Path(path_type=Path),
    default=None,
    show_default="build instead",
    help="Validate the shards in DIR (pgolf-built or upstream FineWeb layout) instead of "
    "building; exit 1 if problems are found, 2 if the shards cannot be read.",
)
@click.option(
    "--tokenizer",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    show_default="tokenizer.model next to the shards, or data/tokenizers/fineweb_<V>_bpe.model",
    help="With --check: the sentencepiece model giving the vocabulary size and BOS id.",
)
@click.option(
    "--max-train-shards",
    type=click.IntRange(min=0),
    default=None,
    show_default="all",
    help="With --check: check token ids and val overlap on only the first N train shards "
    "(big FineWeb dirs); the fingerprint still covers all shards.",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=DEFAULT_VAL_FRACTION,
    show_default=True,
    help="With --from-text: share of documents (chosen by text hash) held out for validation.",
)
@click.option(
    "--shard-tokens",
    type=click.IntRange(min=1),
    default=DEFAULT_SHARD_TOKENS,
    show_default=True,
    help="With --from-text: tokens per shard file.",
)
@click.option(
    "--force",
    is_flag=True,
    show_default=True,
    help="Rebuild even if the dataset is already built.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    show_default=True,
    help="With --check: print the report as JSON instead of tables.",
)
@click.option(
    "--progress/--no-progress",
    default=True,
    show_default=True,
    help="Show progress bars (on stderr).",
)
@click.argument("more_text", nargs=-1, type=click.Path(path_type=Path), metavar="[FILES]...")
def command(
    vocab_size: int,
    from_text: tuple[Path, ...],
    out: Path | None,
    check: Path | None,
    tokenizer: Path | None,
    max_train_shards: int | None,
    val_fraction: float,
    shard_tokens: int,
    force: bool,
    as_json: bool,
    progress: bool,
    more_text: tuple[Path, ...],
) -> None:
    """Build or check token shards in the official Parameter Golf format.

    With no options, builds the embedded default dataset once: English text that ships with
    CPython (pydoc topics, standard-library docstrings and comments), split by document into
    train and val, a sentencepiece BPE tokenizer trained on the train documents only, and
    shards fineweb_train_*.bin / fineweb_val_*.bin in the cache directory (PGOLF_CACHE_DIR,
    default ~/.cache/pgolf). A second call does nothing. --from-text does the same for your
    own corpus; --check validates existing shards and prints their data fingerprint.

    \b
    Example:
      pgolf data
      pgolf data --from-text my_corpus/ --vocab-size 2048
      pgolf data --check data/datasets/fineweb10B_sp1024
    """
    console = Console(soft_wrap=True, highlight=False)
    given = {
        name
        for name in ("tokenizer", "max_train_shards", "as_json", "val_fraction", "shard_tokens")
        if click.get_current_context().get_parameter_source(name)
        is not click.core.ParameterSource.DEFAULT
    }
    if check is None and given & {"tokenizer", "max_train_shards", "as_json"}:
        raise click.UsageError("--tokenizer, --max-train-shards and --json go with --check")
    if (check is not None or not (from_text or out)) and given & {"val_fraction", "shard_tokens"}:
        raise click.UsageError("--val-fraction and --shard-tokens go with --from-text or --out")
    if more_text and not from_text:
        raise click.UsageError(
            f"unexpected argument {str(more_text[0])!r} (did you mean --from-text?)"
        )
    if check is not None:
        if from_text or out is not None:
            raise click.UsageError("--check cannot be combined with --from-text or --out")
        with rich_progress(progress and not as_json) as report:
            result = check_dir(
                check, tokenizer=tokenizer, max_train_shards=max_train_shards, progress=report
            )
        if as_json:
            click.echo(json.dumps(_report_json(result), indent=2))
        else:
            _render_check(console, result)
        if result.problems:
            raise PgolfError(f"{check}: {len(result.problems)} problem(s) found")
        return
    try:
        with rich_progress(progress) as report:
            if from_text:
                docs, how = text_documents([*from_text, *more_text])
                target = out
                if target is None:
                    key = input_fingerprint(
                        docs,
                        vocab_size=vocab_size,
                        val_fraction=val_fraction,
                        shard_tokens=shard_tokens,
                    )[:12]
                    target = default_dataset_dir(vocab_size).parent / f"text_{key}_sp{vocab_size}"
                source = f"user text: {how}"
                ds, built = build_dataset(
                    docs,
                    target,
                    name=target.name,
                    source=source,
                    vocab_size=vocab_size,
                    val_fraction=val_fraction,
                    shard_tokens=shard_tokens,
                    force=force,
                    progress=report,
                )
            elif out is not None:
                ds, built = build_dataset(
                    list(default_documents()),
                    out,
                    name=out.name,
                    source=default_corpus_description(),
                    vocab_size=vocab_size,
                    force=force,
                    progress=report,
                )
            else:
                ds, built = build_default_dataset(vocab_size, force=force, progress=report)
    except OSError as e:
        raise InputError(f"{e.filename or 'dataset'}: {e.strerror or e}") from None
    _render_dataset(console, ds, built)


def _render_dataset(console: Console, ds: Dataset, built: bool) -> None:
    if built:
        click.echo(f"Built dataset in {ds.path}")
    else:
        click.echo(f"Dataset already built in {ds.path}; nothing to do (--force rebuilds).")
    docs = ds.meta.get("documents", {})
    shards = ds.meta.get("shards", {})
    table = Table(show_header=True, header_style="bold")
    for col in ("split", "documents", "tokens", "shards"):
        table.add_column(col, justify="right" if col != "split" else "left")
    for split, n_tokens in (("train", ds.n_train_tokens), ("val", ds.n_val_tokens)):
        table.add_row(
            split, f"{docs.get(split, '?'):,}", f"{n_tokens:,}", str(len(shards.get(split, [])))
        )
    console.print(table)
    click.echo(f"source: {ds.meta.get('source', '?')}")
    click.echo(f"vocab size: {ds.vocab_size}")
    if "val_bytes" in ds.meta:
        click.echo(
            f"val bytes: {ds.meta['val_bytes']:,} ({ds.n_val_tokens / ds.meta['val_bytes']:.4f} tokens/byte)"
        )
    click.echo(f"fingerprint: {ds.fingerprint}")
    click.echo(f"DATA_PATH={ds.path} TOKENIZER_PATH={ds.tokenizer_path}")


def _render_check(console: Console, r: CheckReport) -> None:
    click.echo(f"Checked {r.path}")
    click.echo(f"tokenizer: {r.tokenizer_path or 'none found'}")
    if r.vocab_size is not None:
        click.echo(f"vocab size: {r.vocab_size} (BOS id {r.bos_id})")
    table = Table(show_header=True, header_style="bold")
    for col in ("split", "shards", "tokens", "documents"):
        table.add_column(col, justify="right" if col != "split" else "left")
    for split, st in (("train", r.train), ("val", r.val)):
        table.add_row(split, str(st.shards), f"{st.tokens:,}", f"{st.documents:,}")
    console.print(table)
    if r.val_bytes:
        click.echo(f"val bytes: {r.val_bytes:,} ({r.val.tokens / r.val_bytes:.4f} tokens/byte)")
    if r.sidecars_ignored:
        click.echo(f"byte sidecars ignored: {', '.join(r.sidecars_ignored)}")
    click.echo(f"train/val overlapping documents: {r.overlap_documents}")
    click.echo(f"fingerprint: {r.fingerprint}")
    for note in r.notes:
        click.echo(f"note: {note}")
    for problem in r.problems:
        click.echo(f"problem: {problem}")
    click.echo("OK" if r.ok else f"FAILED ({len(r.problems)} problems)")


def _report_json(r: CheckReport) -> dict[str, object]:
    return {
        "path": str(r.path),
        "tokenizer": str(r.tokenizer_path) if r.tokenizer_path else None,
        "vocab_size": r.vocab_size,
        "bos_id": r.bos_id,
        "train": vars(r.train),
        "val": vars(r.val),
        "val_bytes": r.val_bytes,
        "overlap_documents": r.overlap_documents,
        "train_shards_checked": r.train_shards_checked,
        "sidecars_ignored": r.sidecars_ignored,
        "fingerprint": r.fingerprint,
        "problems": r.problems,
        "notes": r.notes,
        "ok": r.ok,
    }
