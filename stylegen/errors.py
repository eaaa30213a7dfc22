"""The errors stylegen raises for the person running it, as opposed to bugs.

`StylegenError` is the base of every error a user can act on: a file that is not a network, a
dataset that does not fit, missing pretrained weights, a ws file for another network, an option
value the library refuses. Its message is one line that names the file or option. The command
line prints exactly that line (`Error: ...`, exit code 2) and lets every other exception keep its
traceback, because anything else is a bug in stylegen.

`StylegenWarning` is the base of what stylegen warns about (a slower fallback path, a value the
file did not hold and was estimated); the command line prints it as one line, `Warning: ...`.

Most user errors are also `ValueError`s (`InputError`), so code written before this base
existed, `except ValueError`, still catches them.
"""

from __future__ import annotations


class StylegenError(Exception):
    """An error meant for the user: one line naming the file, option or shape at fault."""


class InputError(StylegenError, ValueError):
    """A bad input value: a file's content, an option's value, a network that does not fit."""


class WsFileError(InputError):
    """A ws file (`sample --save-ws`, `project`) that cannot be read or does not fit the network."""


class StylegenWarning(UserWarning):
    """Something the user should know about a result that still went ahead (one line, no source)."""
