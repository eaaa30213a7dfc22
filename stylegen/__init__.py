"""stylegen: style-based image generators (the StyleGAN2 family)."""

import os

# Large fresh activations (tens of MB per layer) otherwise pay 4 KiB page faults on every
# allocation: 35-60 ms per 67 MB output on our CI machine (bench/ops.py). Only effective when
# set before torch is first imported; users can override it with THP_MEM_ALLOC_ENABLE=0.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from stylegen.formats.bundled import default_network
from stylegen.formats.snapshot import (
    NetworkLoadError,
    load_network,
    load_snapshot,
    save_network,
)
from stylegen.networks.generator import (
    Generator,
    GeneratorConfig,
    seed_to_z,
    to_uint8,
    ws_resolution,
)

__version__ = "0.1.0"

__all__ = [
    "Generator",
    "GeneratorConfig",
    "NetworkLoadError",
    "default_network",
    "load_network",
    "load_snapshot",
    "save_network",
    "seed_to_z",
    "to_uint8",
    "ws_resolution",
]
