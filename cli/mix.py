"""`stylegen mix`: the StyleGAN style-mixing figure, and layer swapping between two networks."""

from __future__ import annotations

import os
from pathlib import Path

import click

from stylegen.cli import common
from stylegen.formats.images import make_grid, save_png, to_numpy_images


@click.command("mix", short_help="Style mixing / layer swapping grid.")
@click.option(
    "--coarse",
    "src_path",
    metavar="SRC",
    type=common.NETWORK,
    help="Source network (file or bundled name): its styles (and blocks) at the split levels; or a ws "
    "file (.npz of `sample --save-ws` / `project`) drawn through --network. Default: --network, else the "
    "bundled 'people'.",
)
@click.option(
    "--fine",
    "dst_path",
    metavar="DST",
    type=common.NETWORK,
    help="Destination network (file or bundled name): everything else; or a ws file (.npz) drawn through "
    "--network. "
    "Default: the same network as --coarse.",
)
@click.option(
    "--network",
    metavar="PKL",
    type=common.NETWORK,
    default=None,
    help="Network of the ws files given as --coarse/--fine, or of an omitted --coarse (default: the other side's network, else the bundled 'people'). Refused when --coarse and --fine are both networks.",
)
@click.option(
    "--coarse-seeds",
    type=common.SEEDS,
    default="0-4",
    show_default=True,
    help="Seeds of the sources (top row), through SRC's mapping (not with a ws file).",
)
@click.option(
    "--fine-seeds",
    type=common.SEEDS,
    default="5-9",
    show_default=True,
    help="Seeds of the destinations (left column), through DST's mapping (not with a ws file).",
)
@click.option(
    "--split",
    default="coarse",
    show_default=True,
    metavar="RES|coarse|middle|fine|ws:LIST",
    help="What SRC gives: everything at resolution <= RES (a power of two), exactly one level "
    "(coarse = 4-8, middle = 16-32, fine = 64 and up), or the ws indices of LIST (ws:0-4, ws:0,8-15). "
    "A StyleGAN3 ws counts at 2 x its layer's cutoff frequency, rounded up to a power of two "
    "(the printed table).",
)
@common.generation_options
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Grid PNG. Default: OUTDIR/mix.png with --outdir, else mix.png.",
)
@click.option(
    "--outdir",
    type=click.Path(file_okay=False),
    default=None,
    help="Also write every cell as OUTDIR/mix-c{coarse seed}-f{fine seed}.png.",
)
@click.option(
    "--save-network",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="PKL",
    help="Write the blended generator (SRC's blocks, or StyleGAN3 layers, at the split, DST's "
    "elsewhere; SRC's mapping), loadable by `stylegen sample`.",
)
@common.device_option
@common.library_errors
def mix(
    src_path,
    dst_path,
    network,
    coarse_seeds,
    fine_seeds,
    split,
    truncation_psi,
    truncation_cutoff,
    noise_mode,
    class_idx,
    out,
    outdir,
    save_network,
    device,
):
    """Style mixing: top row = SRC images of the coarse seeds, left column = DST images of the
    fine seeds, cell (row j, column i) = destination j with source i's styles at the split.

    With --fine omitted (or the same file) this is plain style mixing, as in the StyleGAN
    paper. With two networks of the same architecture (e.g. one fine-tuned from the other)
    it is layer swapping: the synthesis blocks at the split come from SRC, the rest from DST.
    The ws indices taken from SRC are printed.

    StyleGAN3 networks have no blocks: ws 0 drives the Fourier input, ws i + 1 synthesis layer i,
    and each counts at the resolution that holds its layer's detail (2 x cutoff, rounded up to a
    power of two), so the same --split works; a table of the ws, layers, sampling rates, cutoffs
    and levels is printed. Layer swapping takes the input and layers of the selected ws from SRC.

    A ws file as --coarse or --fine supplies that side's rows as stored (e.g. a projected
    photo as the destination: --network PKL --fine out/ws.npz); --trunc applies to seeds only.
    """
    import stylegen
    from stylegen.editing import mixing
    from stylegen.formats import ws_file

    device = common.resolve_device(device)
    src_file = src_path if src_path is not None and ws_file.is_ws_file(src_path) else None
    dst_file = dst_path if dst_path is not None and ws_file.is_ws_file(dst_path) else None
    check_seed_options(src_file, dst_file)
    src_net, dst_net = mix_networks(src_path, dst_path, network, src_file, dst_file)
    G_src = stylegen.load_network(src_net).to(device).eval()
    G_dst = G_src
    if not os.path.samefile(src_net, dst_net):
        G_dst = stylegen.load_network(dst_net).to(device).eval()
    if G_dst is not G_src:
        mixing.check_same_architecture(G_src, G_dst)
    try:
        selection = mixing.select(split, G_src)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="'--split'") from e
    c = common.class_labels(G_src, class_idx, 1, device)
    src, dst = make_sources(
        G_src, G_dst, coarse_seeds, fine_seeds, truncation_psi, truncation_cutoff, c, src_file, dst_file
    )
    click.echo(f"SRC network: {src_net}" + (f"\nDST network: {dst_net}" if dst_net != src_net else ""))
    for file, net in ((src_file, src_net), (dst_file, dst_net)):
        if file is not None:
            warn_if_made_elsewhere(file, net)
    report_selection(selection, G_src, layer_swap=G_dst is not G_src)
    G_mix = mixing.mixing_generator(src, dst, selection)
    out = Path(out) if out else Path(outdir or ".") / "mix.png"
    write_grid(G_mix, src, dst, selection, noise_mode, out, Path(outdir) if outdir else None)
    click.echo(f"Wrote {out}")
    if save_network:
        stylegen.save_network(save_network, G=G_mix, G_ema=G_mix)
        click.echo(f"Wrote the blended generator to {save_network}")


def report_selection(selection, G, layer_swap: bool) -> None:
    from stylegen.editing import mixing
    from stylegen.networks.sg3_generator import is_stylegan3

    rest = mixing.rest_of(selection, G)
    if is_stylegan3(G):
        print_layer_table(G, selection)
    click.echo(f"From SRC (coarse seeds): {selection.describe()}")
    click.echo(f"From DST (fine seeds):   {rest.describe()}")
    if layer_swap and is_stylegan3(G):
        click.echo("Layer swapping: the input / layers marked SRC and the mapping from SRC, the others from DST")
    elif layer_swap:
        blocks = mixing.block_resolutions(G.img_resolution)
        from_src = [f"b{r}" for r in blocks if r in selection.resolutions]
        from_dst = [f"b{r}" for r in blocks if r not in selection.resolutions]
        click.echo(f"Layer swapping: blocks {from_src} and the mapping from SRC, blocks {from_dst} from DST")


def print_layer_table(G, selection) -> None:
    """StyleGAN3: one line per ws: the part it drives, its sampling rate and cutoff, where it counts."""
    from stylegen.editing import mixing

    levels = mixing.layer_levels(G)
    width = max(len(lv.name) for lv in levels)
    click.echo("StyleGAN3 ws (res = 2 x cutoff rounded up to a power of two: the StyleGAN2 resolution of that detail):")
    click.echo(f"  {'ws':>3}  {'layer':<{width}}  {'rate':>5}  {'cutoff':>7}  {'res':>5}  {'level':<6}  from")
    for lv in levels:
        side = "SRC" if lv.ws_index in selection.ws_indices else "DST"
        click.echo(
            f"  {lv.ws_index:>3}  {lv.name:<{width}}  {lv.sampling_rate:>5g}  {lv.cutoff:>7.3f}  "
            f"{lv.resolution:>5}  {lv.level:<6}  {side}"
        )


def check_seed_options(src_file, dst_file) -> None:
    """--coarse-seeds / --fine-seeds given on the command line make no sense for a ws file."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    for file, option, param in ((src_file, "--coarse", "coarse_seeds"), (dst_file, "--fine", "fine_seeds")):
        if file is not None and ctx.get_parameter_source(param) == ParameterSource.COMMANDLINE:
            raise click.BadParameter(
                f"{option} {file} is a ws file: its rows are the {'sources' if option == '--coarse' else 'destinations'}",
                param_hint=f"'{option}-seeds'",
            )


def mix_networks(src_path, dst_path, network, src_file, dst_file) -> tuple[str, str]:
    """(SRC network, DST network) paths. A ws file side uses --network, else the other side's
    network file; an omitted --coarse uses --network, else the bundled model; an omitted --fine
    uses SRC's network."""
    src_pkl = src_path if src_path is not None and src_file is None else None
    dst_pkl = dst_path if dst_path is not None and dst_file is None else None
    if network is not None and src_pkl is not None and src_file is None and dst_file is None:
        raise click.BadParameter(
            "--network only names the network of ws files or of an omitted --coarse; here --coarse is a network",
            param_hint="'--network'",
        )
    ws_net = network or dst_pkl or src_pkl
    if src_file is not None:
        src_net = common.resolve_network(ws_net, "--network")
    else:
        src_net = common.resolve_network(src_pkl or network, "--coarse")
    if dst_file is not None:
        dst_net = common.resolve_network(ws_net or src_net, "--network")
    else:
        dst_net = dst_pkl or src_net
    return src_net, dst_net


def warn_if_made_elsewhere(file, net) -> None:
    """A ws file drawn through a network other than the one that made it fits (same shapes) but
    means something else there: say so on stderr, once per file."""
    from stylegen.formats.ws_file import ws_file_network
    from stylegen.metrics.weights import file_sha256

    made = ws_file_network(file)
    if made is not None and made[1] != file_sha256(Path(net)):
        name, digest = made
        click.echo(f"Warning: {file} was made with {name} (sha256 {digest[:12]}...), not with {net}", err=True)


def make_sources(
    G_src, G_dst, coarse_seeds, fine_seeds, truncation_psi, truncation_cutoff, c, src_file=None, dst_file=None
):
    """A source is a network plus its ws: from seeds through its mapping, or from a ws file."""
    import torch

    from stylegen.editing.mixing import StyleSource, load_ws_file, ws_from_seeds

    def side(G, seeds, file):
        if file is not None:
            return load_ws_file(file, G)
        with torch.inference_mode():
            ws = ws_from_seeds(G, seeds, truncation_psi, truncation_cutoff, c)
        return StyleSource(G, ws, [f"{s:04d}" for s in seeds])

    return side(G_src, coarse_seeds, src_file), side(G_dst, fine_seeds, dst_file)


def write_grid(G_mix, src, dst, selection, noise_mode, out: Path, outdir: Path | None) -> None:
    """(1 + Nd) x (1 + Ns) grid: blank corner, sources on top, destinations on the left."""
    import torch

    from stylegen.editing.mixing import mix_rows

    if outdir is not None:
        outdir.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    n_rows = len(dst.names)
    frozen = {id(G): G.freeze() for G in (src.G, dst.G, G_mix)}  # the inference forms, once each
    with torch.inference_mode():
        tops = to_numpy_images(frozen[id(src.G)].synthesis(src.ws, noise_mode=noise_mode))
        lefts = to_numpy_images(frozen[id(dst.G)].synthesis(dst.ws, noise_mode=noise_mode))
        cells = [None, *tops]
        bar = common.progress(n_rows, f"Mixing {n_rows} x {len(src.names)}", show=n_rows > 1)
        with bar:
            rows = mix_rows(frozen[id(G_mix)], src, dst, selection, noise_mode)
            for j, row in enumerate(rows):
                row = to_numpy_images(row)
                cells += [lefts[j], *row]
                if outdir is not None:
                    for i, im in enumerate(row):
                        save_png(outdir / f"mix-c{src.names[i]}-f{dst.names[j]}.png", im)
                bar.update(1)
    save_png(out, make_grid(cells, cols=len(src.names) + 1))
