"""The `stylegen` command: a Click group whose subcommands live one per module in this package.

Errors: every usage error (Click's own and the library's `StylegenError`s, see
`common.library_errors`) is one line on stderr, `Error: ...`, with exit code 2 and no traceback;
any other exception is a bug and keeps its traceback.

`stylegen --write-help docs/cli_help` (or `python -m stylegen.cli.main --write-help
docs/cli_help`) regenerates the committed `--help` texts; tests/test_cli.py checks they match.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import click

from stylegen.cli.common import one_line
from stylegen.cli.convert import convert
from stylegen.cli.directions import directions
from stylegen.cli.doctor import doctor
from stylegen.cli.info import info
from stylegen.cli.metrics import metrics
from stylegen.cli.mix import mix
from stylegen.cli.project import project
from stylegen.cli.sample import sample
from stylegen.cli.train import dataset, train
from stylegen.cli.ui import ui
from stylegen.cli.video import video
from stylegen.errors import StylegenWarning

# Fixed help width: `--help` reads the same on every terminal, so docs/cli_help can be compared.
HELP_WIDTH = 100


# Click >= 8.2 signals "no arguments: show the help" with this UsageError subclass.
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


class StylegenGroup(click.Group):
    """click.Group printing ClickExceptions as a single `Error: ...` line (no usage block)."""

    def main(
        self,
        args=None,
        prog_name=None,
        complete_var=None,
        standalone_mode=True,
        **extra,
    ):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _NO_ARGS_IS_HELP as e:  # bare `stylegen`: the help text, as Click prints it
            click.echo(e.format_message(), err=True)
            sys.exit(e.exit_code)
        except click.UsageError as e:
            hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
            click.echo(f"Error: {one_line(e.format_message())}{hint}", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            click.echo(f"Error: {one_line(e.format_message())}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        # Non-standalone Click returns the exit code of ctx.exit() (e.g. 0 after --help).
        sys.exit(rv if isinstance(rv, int) else 0)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """stylegen's own warnings as one line, `Warning: ...` (no file, line or source: they are
    meant for the person running the command); any other warning as Python prints it."""
    if issubclass(category, StylegenWarning):
        click.echo(f"Warning: {one_line(str(message))}", err=True)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _write_help(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is None or ctx.resilient_parsing:
        return
    for name, text in help_texts().items():
        path = Path(value) / f"{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        click.echo(f"Wrote {path}")
    ctx.exit(0)


@click.group(
    name="stylegen",
    cls=StylegenGroup,
    context_settings={
        "terminal_width": HELP_WIDTH,
        "max_content_width": HELP_WIDTH,
        "help_option_names": ["-h", "--help"],
    },
)
@click.version_option(package_name="stylegen", prog_name="stylegen")
@click.option(
    "--write-help",
    metavar="DIR",
    hidden=True,
    is_eager=True,
    expose_value=False,
    callback=_write_help,
    help="Write every command's --help text to DIR/<command>.txt and exit.",
)
def main():
    """StyleGAN2 and StyleGAN3 generators: sample images, mix styles, project images, compute metrics,
    train, inspect and convert networks.

    Networks: stylegen snapshots, NVIDIA stylegan2-ada-pytorch and stylegan3 pickles (StyleGAN3-T
    and -R generators too, in every command), NVIDIA's
    TensorFlow StyleGAN2(-ADA) pickles, and rosinality/stylegan2-pytorch checkpoints; nothing
    from a file is executed while reading it. Runs on the CPU when no GPU is present.
    """


for _command in (sample, mix, project, metrics, info, convert, train, dataset, doctor, video, directions, ui):
    main.add_command(_command)


def help_texts() -> dict[str, str]:
    """{'main': `stylegen --help`, 'sample': `stylegen sample --help`, ...} as printed."""
    from click.testing import CliRunner

    runner = CliRunner()
    texts = {}
    for name in ["main", *sorted(main.commands)]:
        args = ["--help"] if name == "main" else [name, "--help"]
        result = runner.invoke(main, args, prog_name="stylegen")
        assert result.exit_code == 0, result.output
        texts[name] = result.output
    return texts


if __name__ == "__main__":
    main()
