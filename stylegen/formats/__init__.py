"""Files: our snapshots, NVIDIA's pickles, ws files, images, atomic writes, bundled networks.

The facts about every format read here are in docs/formats.md.
"""
