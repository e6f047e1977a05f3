"""`pgolf compare`: not built yet."""

import click

from pgolf.errors import NotBuiltYet


@click.command("compare")
def command() -> None:
    """Not built yet."""
    raise NotBuiltYet("compare")
