"""Comparing a file's tensors with the names and shapes a network needs, before anything is built."""

from __future__ import annotations

from collections.abc import Mapping


def shape_mismatches(state: Mapping, expected: Mapping[str, tuple], need: str = "expected") -> str | None:
    """One line naming the first missing, unexpected or misshapen tensors of `state`, or None.

    state: name -> tensor (or array); expected: name -> shape. `need` words the wanted shape
    ("expected", "the build arguments need", ...).
    """
    problems = [f"missing {k} {list(s)}" for k, s in expected.items() if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    problems += [
        f"{k} has shape {list(t.shape)}, {need} {list(expected[k])}"
        for k, t in state.items()
        if k in expected and tuple(t.shape) != tuple(expected[k])
    ]
    if not problems:
        return None
    more = f" (+{len(problems) - 4} more)" if len(problems) > 4 else ""
    return ", ".join(problems[:4]) + more
