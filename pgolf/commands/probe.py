"""`pgolf probe`: not built yet."""

import click

from pgolf.errors import NotBuiltYet


@click.command("probe")
def command() -> None:
    """Not built yet."""
    raise NotBuiltYet("probe")
