"""`pgolf audit`: not built yet."""

import click

from pgolf.errors import NotBuiltYet


@click.command("audit")
def command() -> None:
    """Not built yet."""
    raise NotBuiltYet("audit")
