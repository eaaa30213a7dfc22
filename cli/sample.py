"""`stylegen sample`: images for a list of seeds, one `seed%04d.png` each."""

from __future__ import annotations

from pathlib import Path

import click

from stylegen.cli import common
from stylegen.formats.images import make_grid, save_png, to_numpy_images


@click.command("sample", short_help="Generate one PNG per seed.")
@common.network_option
@click.option("--seeds", type=common.SEEDS, required=True, help="Seeds, e.g. '0-99' or '1,5,7-9'.")
@common.generation_options
@click.option(
    "--outdir",
    type=click.Path(file_okay=False),
    default="out",
    show_default=True,
    help="Directory for the PNGs (created if missing).",
)
@click.option(
    "--grid",
    is_flag=True,
    help="Also write grid.png with all images (ceil(sqrt(N)) columns).",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Images generated per forward pass.",
)
@common.device_option
@click.option(
    "--save-ws",
    is_flag=True,
    help="Also write ws.npz: the ws of every seed (see docs/cli.md).",
)
@common.library_errors
def sample(
    network,
    seeds,
    truncation_psi,
    truncation_cutoff,
    noise_mode,
    class_idx,
    outdir,
    grid,
    batch,
    device,
    save_ws,
):
    """Generate one image per seed: OUTDIR/seed0000.png, ...

    z = stylegen.seed_to_z(seed, z_dim) (NVIDIA's RandomState convention), so the same seed
    gives the same image as NVIDIA's generate.py with --noise-mode const.
    """
    import stylegen

    device = common.resolve_device(device)
    path = common.resolve_network(network, "--network")
    G = stylegen.load_network(path).to(device).freeze()
    c = common.class_labels(G, class_idx, 1, device)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    images, all_ws = generate(G, seeds, c, truncation_psi, truncation_cutoff, noise_mode, batch, outdir)
    if grid:
        save_png(outdir / "grid.png", make_grid(images))
    if save_ws:
        from stylegen.formats.ws_file import save_ws_file

        save_ws_file(
            outdir / "ws.npz",
            all_ws,
            seeds,
            truncation_psi=truncation_psi,
            truncation_cutoff=truncation_cutoff,
            class_idx=class_idx,
            network=path,
        )
    click.echo(f"Wrote {len(seeds)} image(s) to {outdir}")


def generate(G, seeds, c, truncation_psi, truncation_cutoff, noise_mode, batch, outdir):
    """Run G over the seeds in batches, writing each PNG as soon as it exists.

    Returns (uint8 [H, W, C] images, ws [N, num_ws, w_dim] on the CPU).
    """
    import torch

    from stylegen.editing.mixing import ws_from_seeds

    images, all_ws = [], []
    starts = range(0, len(seeds), batch)
    show = len(starts) > 1
    bar = common.progress(len(seeds), f"Generating {len(seeds)} images", show)
    with torch.inference_mode(), bar:
        for start in starts:
            chunk = seeds[start : start + batch]
            ws = ws_from_seeds(G, chunk, truncation_psi, truncation_cutoff, c)
            imgs = to_numpy_images(G.synthesis(ws, noise_mode=noise_mode))
            for seed, im in zip(chunk, imgs):
                save_png(outdir / f"seed{seed:04d}.png", im)
            images.extend(imgs)
            all_ws.append(ws.float().cpu())
            bar.update(len(chunk))
    return images, torch.cat(all_ws)
