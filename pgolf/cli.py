"""The `pgolf` command line: one thin click group; each verb lives in pgolf/commands/."""

import click

from pgolf import __version__
from pgolf.commands import audit, compare, data, package, probe, run, verify


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="pgolf")
def main() -> None:
    """pgolf: prove a Parameter Golf record run, and audit record claims.

    \b
    Typical flow:
      pgolf data                         build the embedded default dataset
      pgolf run --seeds 42 314 999       train + evaluate once per seed
      pgolf audit runs/<stamp>           static legality audit of a folder
      pgolf package runs/<stamp> --name MyIdea
      pgolf verify records/track_10min_16mb/<date>_MyIdea
    """


for _module in (data, run, audit, package, verify, compare, probe):
    main.add_command(_module.command)


if __name__ == "__main__":
    main()
