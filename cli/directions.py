"""`stylegen directions`: closed-form editing directions (SeFa) of a network, and their figure."""

from __future__ import annotations

from pathlib import Path

import click

from stylegen.cli import common


@click.command("directions", short_help="Editing directions (SeFa) and their figure.")
@common.network_option
@click.option(
    "--levels",
    default="all",
    show_default=True,
    metavar="all|coarse|middle|fine|RES|ws:LIST",
    help="Whose style affines to factorise, and which ws the directions move: every layer, one level "
    "(coarse = 4-8, middle = 16-32, fine = 64 and up), everything at resolution <= RES, or the ws "
    "indices of LIST (ws:0-4, ws:0,8-15).",
)
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Number of directions kept (by descending eigenvalue; at most w_dim).",
)
@click.option(
    "--torgb",
    is_flag=True,
    help="Also stack the toRGB affines (SeFa and rosinality's script leave them out).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default="directions.npz",
    show_default=True,
    help="Where to write the directions (.npz, see docs/cli.md).",
)
@click.option(
    "--figure",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write this PNG: one row per direction, one column per strength, for --seed.",
)
@click.option(
    "--seed", type=click.IntRange(0, common.MAX_SEED), default=0, show_default=True, help="Seed of the figure."
)
@click.option(
    "--strength",
    type=click.FloatRange(min=0, min_open=True),
    default=3.0,
    show_default=True,
    help="The figure's columns: 7 strengths evenly from -STRENGTH to +STRENGTH (the middle one is 0).",
)
@click.option(
    "--trunc",
    "truncation_psi",
    type=float,
    default=1.0,
    show_default=True,
    help="Truncation psi of the figure's seed (edits are added after truncation).",
)
@click.option(
    "--class",
    "class_idx",
    type=click.IntRange(min=0),
    default=None,
    metavar="K",
    help="Class label of the figure's seed (conditional networks).",
)
@common.device_option
@common.library_errors
def directions(network, levels, top, torgb, out, figure, seed, strength, truncation_psi, class_idx, device):
    """Compute closed-form editing directions (SeFa, Shen & Zhou 2021) and write them to OUT.

    The directions are the eigenvectors of A^T A, A the stacked (row-normalised) style-affine
    weights of the layers at --levels; StyleGAN3's input affine, a transform and not a style, is
    never used. Apply them with `stylegen sample --edit OUT:K:S`. OUT records the network's
    sha256, and --edit refuses it for any other network.
    """
    import numpy as np

    import stylegen
    from stylegen.editing import directions as sefa

    device = common.resolve_device(device)
    path = common.resolve_network(network, "--network")
    G = stylegen.load_network(path)
    d = sefa.factorize(G, levels, top, torgb, network=path)
    sefa.save_directions(out, d)
    click.echo(f"Directions of ws {list(d.ws_indices)} ({len(d.layers)} affines); eigenvalues of the top {len(d)}:")
    click.echo("  " + " ".join(f"{v:.4g}" for v in d.eigenvalues))
    click.echo(f"Wrote {out}")
    if figure is not None:
        G = G.to(device).freeze()
        write_figure(G, d, Path(figure), seed, np.linspace(-strength, strength, 7), truncation_psi, class_idx, device)
        click.echo(f"Wrote {figure}")


def write_figure(G, d, path: Path, seed: int, strengths, truncation_psi: float, class_idx, device) -> None:
    """PNG grid: row k = direction k at `strengths` (columns), all from one seed's ws."""
    from stylegen.editing.directions import sweep_images
    from stylegen.editing.mixing import ws_from_seeds
    from stylegen.formats.images import make_grid, save_png

    c = common.class_labels(G, class_idx, 1, device)
    ws = ws_from_seeds(G, [seed], truncation_psi, None, c)
    rows = sweep_images(G, ws, d, [float(s) for s in strengths])
    save_png(path, make_grid([im for row in rows for im in row], cols=len(strengths)))
