"""`stylegen doctor`: can this machine build and run the native ops, and if not, why not."""

from __future__ import annotations

import click

from stylegen.cli.common import one_line


@click.command("doctor", short_help="Check the toolchain for the native ops.")
@click.option(
    "--verbose",
    is_flag=True,
    help="Also show each plugin's build directory, flags, architectures and compiler commands, "
    "and the compiler's full output of a build.",
)
@click.option("--no-cuda", is_flag=True, help="Check the CPU plugin only.")
@click.option(
    "--require-cuda",
    is_flag=True,
    help="Fail when the CUDA plugin cannot be built, even with no GPU visible (a compile check).",
)
@click.pass_context
def doctor(ctx: click.Context, verbose: bool, no_cuda: bool, require_cuda: bool) -> None:
    """Report the toolchain (python, torch, ninja, C++ compiler, nvcc) and try to build and load
    the CPU and CUDA plugins, saying for each whether it works and why not.

    The first run compiles the plugins (a minute or two); later runs reuse the cached build.

    Exit status 1 when an expected plugin cannot be built: the CPU plugin always, the CUDA plugin
    when a GPU is visible, STYLEGEN_OPS=cuda or --require-cuda; the last line names the reason.
    """
    if no_cuda and require_cuda:
        raise click.UsageError("--no-cuda and --require-cuda contradict each other; give one")
    from stylegen.cuda_ops import doctor as ops_doctor

    ctx.exit(ops_doctor.run(verbose=verbose, cuda=not no_cuda, require_cuda=require_cuda, echo=click.echo))


def plugin_status(kind: str, verbose: bool = False) -> str:
    """'works' or 'unavailable: <reason>' (one line) after trying to build and import the plugin."""
    from stylegen.cuda_ops import doctor as ops_doctor

    check = ops_doctor.check_plugin(kind, verbose)
    return "works" if check.ok else f"unavailable: {one_line(check.reason)}"
