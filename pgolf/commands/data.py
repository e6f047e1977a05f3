"""`pgolf data`: not built yet."""

import click

from pgolf.errors import NotBuiltYet


@click.command("data")
def command() -> None:
    """Not built yet."""
    raise NotBuiltYet("data")
