"""`stylegen ui`: a local web page to browse seeds, mix, edit and project (needs `stylegen[ui]`)."""

from __future__ import annotations

import click

from stylegen.cli import common


@click.command("ui", short_help="Local web page: browse, mix, edit, project.")
@click.option(
    "--network",
    metavar="PKL",
    type=common.NETWORK,
    default=None,
    help="The network shown first (a file or a bundled name; default: the bundled 'people'). "
    "The page can switch to any other.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. The default serves this machine only; 0.0.0.0 serves your network.",
)
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True, help="Port to listen on.")
@click.option(
    "--share",
    is_flag=True,
    help="Also open a public link through Gradio's share servers (off by default: your networks and "
    "photos stay on this machine).",
)
@common.device_option
@common.library_errors
def ui(network, host, port, share, device):
    """Serve a web page at http://HOST:PORT: browse seeds and truncation, move along editing
    directions, mix styles or swap layers between two networks, project a photo, and save the
    PNG, the ws file or the network. See docs/ui.md.
    """
    try:
        from stylegen.ui.app import build, launch
    except ImportError as e:
        raise common.CLIError(
            f"stylegen ui needs the page's packages ({e.name or e}): pip install 'stylegen[ui]'"
        ) from None
    from stylegen.ui.studio import Studio

    studio = Studio(common.resolve_device(device))
    studio.network(common.resolve_network(network, "--network"))  # a bad file fails here, before serving
    page = build(studio, network)
    click.echo(f"Serving on http://{host}:{port} (Ctrl+C stops)")
    launch(page, host=host, port=port, share=share, block=True)
