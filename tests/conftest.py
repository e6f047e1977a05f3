"""Shared test fixtures: a click runner and an isolated pgolf cache for the whole session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

# Fixture folders hold record-folder look-alikes (their own tests, logs, scripts): never collect them.
collect_ignore = ["fixtures"]


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point pgolf's cache at a temp dir so tests never read or write the user's ~/.cache."""
    previous = os.environ.get("PGOLF_CACHE_DIR")
    cache = tmp_path_factory.mktemp("pgolf-cache")
    os.environ["PGOLF_CACHE_DIR"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("PGOLF_CACHE_DIR", None)
    else:
        os.environ["PGOLF_CACHE_DIR"] = previous


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()
