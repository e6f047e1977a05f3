"""`pgolf package`: not built yet."""

import click

from pgolf.errors import NotBuiltYet


@click.command("package")
def command() -> None:
    """Not built yet."""
    raise NotBuiltYet("package")
