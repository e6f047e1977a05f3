"""`pgolf run`: not built yet."""

import click

from pgolf.errors import NotBuiltYet


@click.command("run")
def command() -> None:
    """Not built yet."""
    raise NotBuiltYet("run")
