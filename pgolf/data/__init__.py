"""Datasets for pgolf: the embedded default corpus, shards in the official format, the
tokenizer and its byte lookup table, and shard checks.

Public API (INTERFACES.md): `default_cache_dir`, `ensure_default_dataset`, `Dataset`,
`read_shard`, `write_shard`, `ShardError`, `data_fingerprint`, plus `build_byte_lut`,
`count_bytes`, `build_dataset`, `build_default_dataset`, `train_shards`, `val_shards`.
"""

from pgolf.data.build import (
    Dataset,
    build_dataset,
    build_default_dataset,
    default_cache_dir,
    default_dataset_dir,
    ensure_default_dataset,
)
from pgolf.data.shards import (
    ShardError,
    data_fingerprint,
    read_header,
    read_shard,
    train_shards,
    val_shards,
    write_shard,
)
from pgolf.data.tokenizer import build_byte_lut, count_bytes

__all__ = [
    "Dataset",
    "ShardError",
    "build_byte_lut",
    "build_dataset",
    "build_default_dataset",
    "count_bytes",
    "data_fingerprint",
    "default_cache_dir",
    "default_dataset_dir",
    "ensure_default_dataset",
    "read_header",
    "read_shard",
    "train_shards",
    "val_shards",
    "write_shard",
]
