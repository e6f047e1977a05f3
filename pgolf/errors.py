"""Exceptions that the CLI turns into one-line messages and exit codes (never tracebacks)."""

import click


class PgolfError(click.ClickException):
    """A failure of the work itself (a run failed, a check failed): exit 1."""

    exit_code = 1


class InputError(click.ClickException):
    """Input that could not be used (bad path, unreadable or malformed file): exit 2."""

    exit_code = 2


class NotBuiltYet(click.ClickException):
    """A verb of the product that is not implemented yet: exit 2."""

    exit_code = 2

    def __init__(self, verb: str) -> None:
        super().__init__(f"`pgolf {verb}` is not built yet in this version of pgolf.")
