"""`stylegen project`: find the ws of a real image (StyleGAN2 / StyleGAN3 projection, LPIPS)."""

from __future__ import annotations

import click

from stylegen.cli import common


@click.command("project", short_help="Project an image into the latent space (w or W+).")
@common.network_option
@click.option(
    "--target",
    metavar="IMG",
    type=click.Path(exists=True, dir_okay=False),
    required=True,
    help="Image to project; center-cropped to a square and resized to the network's resolution.",
)
@click.option("--steps", type=click.IntRange(min=1), default=1000, show_default=True, help="Optimisation steps.")
@click.option("--w-plus", is_flag=True, help="Optimise one w per ws index (W+) instead of a single w.")
@click.option("--seed", type=click.IntRange(min=0), default=303, show_default=True, help="Seed of the initial noise.")
@click.option(
    "--outdir",
    type=click.Path(file_okay=False),
    default="out",
    show_default=True,
    help="Writes ws.npz, proj.png, target.png, target_vs_proj.png (created if missing).",
)
@click.option("--save-video", is_flag=True, help="Also write proj.gif: target | image during the optimisation.")
@click.option(
    "--distance",
    type=click.Choice(["lpips", "offline"]),
    default="lpips",
    show_default=True,
    help="lpips = LPIPS with VGG16 (needs the VGG16 weights, see --vgg); offline = "
    "EfficientNet-Lite0 feature distance (NOT LPIPS; its weights come installed, no download).",
)
@click.option(
    "--vgg",
    metavar="PATH",
    default=None,
    help="torchvision VGG16 weights vgg16-397923af.pth (default: $STYLEGEN_VGG16, then "
    "$TORCH_HOME/hub/checkpoints/, where a missing file is downloaded, 528 MB; offline: use "
    "--distance offline).",
)
@common.device_option
@common.library_errors
def project(network, target, steps, w_plus, seed, outdir, save_video, distance, vgg, device):
    """Project IMG into the network: optimise w (or ws with --w-plus) and the noise maps to
    minimise a perceptual distance, as the StyleGAN2 paper's projector (1000 steps). StyleGAN3
    networks have no noise maps: only w (or ws) is optimised.

    ws.npz has the format of `sample --save-ws` (seeds -1 = projected), so `stylegen mix
    --network PKL --fine OUTDIR/ws.npz` uses the projected image as a destination.
    """
    import stylegen
    from stylegen.editing import projection
    from stylegen.metrics import perceptual
    from stylegen.networks.sg3_generator import is_stylegan3

    perceptual.check_distance(distance, vgg)  # fail fast, before loading anything big
    device = common.resolve_device(device)
    path = common.resolve_network(network, "--network")
    G = stylegen.load_network(path).to(device).eval()
    if G.c_dim:  # refused here, before the distance network is built and the progress bar shows
        raise common.CLIError(
            f"--network {path}: projection of conditional networks (c_dim={G.c_dim}) is not supported"
        )
    image = projection.load_target(target, G.img_resolution, G.img_channels)
    dist = perceptual.load_distance(distance, vgg).to(device)
    click.echo(f"Distance: {dist.name}")
    cfg = projection.ProjectConfig(num_steps=steps, w_plus=w_plus, seed=seed)
    with common.progress(steps, f"Projecting ({steps} steps)", show=True) as bar:
        result = projection.project(
            G, image, dist, cfg, progress=lambda step, loss: bar.update(1), keep_frames=save_video
        )
    written = projection.write_projection(outdir, result, image, save_video, network=path)
    click.echo(f"Distance ({dist.name}) {result.distance_start:.4f} at the start -> {result.distance:.4f}")
    psnr = f"PSNR {result.psnr_start:.2f} dB at the start -> {result.psnr:.2f} dB"
    if not is_stylegan3(G):  # StyleGAN3 has no noise: ws.npz alone renders proj.png
        psnr += f" ({result.psnr_stored_noise:.2f} dB re-rendered from ws.npz with the network's own noise)"
    click.echo(psnr)
    click.echo(f"Wrote {', '.join(p.name for p in written)} to {outdir}")
