"""Shared pieces of the `stylegen` commands: option types, error reporting, devices, PNG writing.

Every command follows the same shape: Click parses the options (the types below refuse bad
values with a message naming the option), the command calls one library function, and the
`library_errors` decorator turns the library's user errors (`stylegen.errors.StylegenError`)
into one `Error: ...` line with exit code 2 (the group in `main.py` prints Click's own usage
errors the same way). Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import torch

MAX_SEED = 2**32 - 1  # numpy.random.RandomState accepts seeds in [0, 2**32)
_SEED_ITEM = re.compile(r"^(\d+)(?:-(\d+))?$")


class CLIError(click.ClickException):
    """A failure the user can act on: printed as one `Error: ...` line, exit code 2."""

    exit_code = 2


# ---------------------------------------------------------------------------------------------
# Option parsing


def parse_seeds(text: str) -> list[int]:
    """'0-99' / '1,5,7-9' -> [0, ..., 99] / [1, 5, 7, 8, 9] (duplicates dropped, order kept).

    Raises ValueError for empty text or items, negatives, non-numbers and reversed ranges.
    """
    if not text.strip():
        raise ValueError("empty seed list; expected e.g. '0-99' or '1,5,7-9'")
    seeds: dict[int, None] = {}  # insertion-ordered set
    for item in text.split(","):
        item = item.strip()
        m = _SEED_ITEM.match(item)
        if m is None:
            what = "negative seed" if re.match(r"^-\d+", item) else "not a seed or range"
            raise ValueError(
                f"{item!r}: {what}; expected non-negative integers or ranges A-B, e.g. '0-99' or '1,5,7-9'"
            )
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise ValueError(f"{item!r}: range end {hi} is below its start {lo}")
        if hi > MAX_SEED:
            raise ValueError(f"{item!r}: seeds must be at most {MAX_SEED}")
        seeds.update(dict.fromkeys(range(lo, hi + 1)))
    return list(seeds)


class SeedList(click.ParamType):
    """Click type for seed lists; errors name the option (`Invalid value for '--seeds': ...`)."""

    name = "SEEDS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[int]:
        if isinstance(value, list):
            return value
        try:
            return parse_seeds(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)


SEEDS = SeedList()
DEVICES = click.Choice(["auto", "cpu", "cuda"])
NOISE_MODES = click.Choice(["const", "random", "none"])


class NetworkRef(click.ParamType):
    """A network file (or ws file) that exists, or the name of a bundled network ('people').

    Converts to the file's path as a string; errors name the option and the bundled names.
    """

    name = "PKL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from stylegen.formats import bundled

        try:
            return str(bundled.resolve(str(value)))
        except bundled.BundledNetworkError as e:
            self.fail(str(e), param, ctx)


NETWORK = NetworkRef()


class FiniteFloat(click.ParamType):
    """A finite number (and > 0 with `positive`); the error says what was expected, e.g.
    "expected a finite angle in degrees, e.g. 20"."""

    def __init__(self, name: str, expected: str, positive: bool = False) -> None:
        self.name, self.expected, self.positive = name, expected, positive

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            v = float(value)
        except (TypeError, ValueError):
            v = math.nan
        if not math.isfinite(v) or (self.positive and v <= 0):
            self.fail(f"{value!r}: {self.expected}", param, ctx)
        return v


network_option = click.option(
    "--network",
    metavar="PKL",
    type=NETWORK,
    help="Network file (stylegen .pkl, NVIDIA PyTorch or TensorFlow pickle, rosinality .pt) or a bundled "
    "name (people, faces); "
    "default: the bundled 'people'.",
)


def generation_options(f: Callable) -> Callable:
    """--trunc, --trunc-cutoff, --noise-mode, --class: how styles and images are drawn."""
    options = [
        click.option(
            "--trunc",
            "truncation_psi",
            type=float,
            default=1.0,
            show_default=True,
            help="Truncation psi: 1 = none, smaller = closer to the average image (each network "
            "towards its own w_avg).",
        ),
        click.option(
            "--trunc-cutoff",
            "truncation_cutoff",
            type=click.IntRange(min=0),
            default=None,
            help="Truncate only the first N ws (default: all).",
        ),
        click.option(
            "--noise-mode",
            type=NOISE_MODES,
            default="const",
            show_default=True,
            help="Per-pixel noise: the network's fixed noise, fresh random noise, or none.",
        ),
        click.option(
            "--class",
            "class_idx",
            type=click.IntRange(min=0),
            default=None,
            metavar="K",
            help="Class label; required for conditional networks.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def device_option(f: Callable) -> Callable:
    return click.option(
        "--device",
        type=DEVICES,
        default="auto",
        show_default=True,
        help="Where to run: auto = cuda if available, else cpu.",
    )(f)


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda if available else cpu; 'cuda' without a GPU is a usage error."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter(
            "cuda requested but torch.cuda.is_available() is False here; use --device cpu",
            param_hint="'--device'",
        )
    return torch.device(name)


def resolve_network(path: str | None, option: str) -> str:
    """The network to load: `path`, else the bundled default model, else a usage error.

    The bundled default is `stylegen.default_network()`; a broken installation without its
    model file is a usage error naming the file and `option`.
    """
    if path is not None:
        return path
    from stylegen.formats import bundled

    try:
        return str(bundled.default_network())
    except bundled.BundledNetworkError as e:
        raise click.UsageError(f"{e}; or pass {option} PKL") from e


def class_labels(G: torch.nn.Module, class_idx: int | None, n: int, device: torch.device) -> torch.Tensor | None:
    """One-hot labels [n, c_dim] for a conditional network, None for an unconditional one."""
    import torch

    c_dim = int(G.c_dim)
    if c_dim == 0:
        if class_idx is not None:
            raise click.BadParameter(
                "the network is unconditional (c_dim=0); leave --class out",
                param_hint="'--class'",
            )
        return None
    if class_idx is None:
        raise click.BadParameter(
            f"the network is conditional (c_dim={c_dim}): pass --class K with K in 0-{c_dim - 1}",
            param_hint="'--class'",
        )
    if not 0 <= class_idx < c_dim:
        raise click.BadParameter(
            f"{class_idx} is out of range: the network has classes 0-{c_dim - 1}",
            param_hint="'--class'",
        )
    c = torch.zeros([n, c_dim], device=device)
    c[:, class_idx] = 1
    return c


# ---------------------------------------------------------------------------------------------
# Errors


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def describe_error(e: BaseException) -> str:
    """One line for a user error; OSErrors name their file."""
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        return f"{e.filename}: {e.strerror}"
    return one_line(str(e)) or type(e).__name__


def is_user_error(e: BaseException) -> bool:
    """A StylegenError, or the operating system refusing a named file.

    The second kind (permission denied, no space left, a directory where a file should be, on
    a path such as --outdir) is about the user's machine, not about stylegen, and carries the
    file name and the reason; an OSError without a file name is treated as a bug.
    """
    from stylegen.errors import StylegenError

    if isinstance(e, StylegenError):
        return True
    return isinstance(e, OSError) and e.filename is not None and bool(e.strerror)


def library_errors(f: Callable) -> Callable:
    """Turn the user errors raised below a command (`is_user_error`) into `Error: ...`, exit 2.

    Every other exception, ValueError and RuntimeError included, is a bug: it keeps its traceback.
    """

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except click.ClickException:
            raise
        except Exception as e:
            if not is_user_error(e):
                raise
            raise CLIError(describe_error(e)) from e

    return wrapper


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        pass


def progress(length: int, label: str, show: bool):
    """click.progressbar on stderr (stdout stays clean for scripts), or a silent stand-in."""
    import sys

    if not show:
        return _NoBar()
    return click.progressbar(length=length, label=label, file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Images
