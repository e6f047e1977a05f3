"""`pgolf verify`: not built yet."""

import click

from pgolf.errors import NotBuiltYet


@click.command("verify")
def command() -> None:
    """Not built yet."""
    raise NotBuiltYet("verify")
