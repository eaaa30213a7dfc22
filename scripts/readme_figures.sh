#!/bin/sh
# Regenerate the README figures with the CLI itself, from the bundled networks:
#   docs/img/samples.png  `stylegen sample --seeds 0-99 --grid`        (the README's first command)
#   docs/img/mix.png      `stylegen mix`                               (style mixing, no options)
#   docs/img/swap.png     `stylegen mix --coarse people --fine faces`  (layer swapping)
#   docs/img/directions.png `stylegen directions --top 5 --figure`    (editing directions)
# (docs/img/video_frames.png: docs/video.md; the page's screenshots: scripts/ui_screenshots.py)
# Run from the repository root with stylegen installed: sh scripts/readme_figures.sh
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
stylegen sample --seeds 0-99 --grid --outdir "$tmp/samples"
cp "$tmp/samples/grid.png" docs/img/samples.png
stylegen mix --out docs/img/mix.png
stylegen mix --coarse people --fine faces --out docs/img/swap.png
stylegen directions --top 5 --seed 13 --out "$tmp/dirs.npz" --figure docs/img/directions.png
echo "wrote docs/img/samples.png docs/img/mix.png docs/img/swap.png docs/img/directions.png"
