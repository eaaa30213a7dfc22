"""The networks shipped inside the package, by short name (docs/models.md).

`stylegen sample` and `stylegen mix` use `default_network()` when no network is given, and every
`--network`-like option accepts these names besides file paths.
"""

from __future__ import annotations

from pathlib import Path

from stylegen.errors import StylegenError

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"

# name -> (file in stylegen/models/, one-line description)
BUNDLED: dict[str, tuple[str, str]] = {
    "people": ("emoji-people-64.pkl", "64x64 emoji people (Noto Color Emoji, 1,014 images with skin tones)"),
    "faces": ("emoji-faces-64.pkl", "64x64 animal faces and smileys, fine-tuned from 'people' (for layer swapping)"),
}
DEFAULT = "people"


class BundledNetworkError(StylegenError, ValueError):
    """A bundled name that is unknown, or whose file is missing from this installation."""


def names() -> list[str]:
    return list(BUNDLED)


def bundled_path(name: str) -> Path:
    """Path of the bundled network `name`; an error naming the file if it is not installed."""
    if name not in BUNDLED:
        raise BundledNetworkError(f"{name!r} is not a bundled network (bundled: {', '.join(BUNDLED)})")
    path = MODELS_DIR / BUNDLED[name][0]
    if not path.is_file():
        raise BundledNetworkError(
            f"the bundled network {name!r} is missing from this installation ({path}); reinstall stylegen"
        )
    return path


def default_network() -> Path:
    """Path of the default bundled network ('people')."""
    return bundled_path(DEFAULT)


def resolve(ref: str) -> Path:
    """A network reference -> a file: an existing file wins, else a bundled name.

    Raises BundledNetworkError (naming `ref`) for anything else.
    """
    path = Path(ref)
    try:  # regular files only: the loaders seek, so a pipe such as <(...) cannot be read
        if path.is_file():
            return path
        what = "is a directory" if path.is_dir() else "not a regular file" if path.exists() else "no such file"
    except OSError as e:  # e.g. a name too long for the file system, a directory we may not search
        raise BundledNetworkError(f"{ref}: {e.strerror or e}") from None
    if ref in BUNDLED:
        return bundled_path(ref)
    raise BundledNetworkError(f"{ref}: {what}, and not a bundled network name ({', '.join(BUNDLED)})")
