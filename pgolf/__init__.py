"""pgolf: reproducibility and submission-audit toolkit for OpenAI's Parameter Golf."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pgolf")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
