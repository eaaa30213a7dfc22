"""Malicious pickle payloads for the security tests: objects whose unpickling would run code."""

from __future__ import annotations

import os
import subprocess


class Payload:
    """Pickles as a call of fn(*args): what an attacker's file asks the unpickler to run."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def payloads(marker) -> dict[str, Payload]:
    """Four ways to run code, each of which creates the file `marker` if it ever runs."""
    return {
        "os.system": Payload(os.system, f"touch {marker}"),
        "builtins.eval": Payload(eval, f"open({str(marker)!r}, 'w')"),
        "subprocess.Popen": Payload(subprocess.Popen, ["touch", str(marker)]),
        "builtins.exec": Payload(exec, f"open({str(marker)!r}, 'w')"),
    }
