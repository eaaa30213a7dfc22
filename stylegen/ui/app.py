"""The page of `stylegen ui`: Gradio components wired to a `Studio` (docs/ui.md).

Three tabs, one network chooser above them:
- Explore: a seed (or a photo: projected here or loaded from a ws file), truncation, sliders along
  the network's SeFa directions, StyleGAN3's translate / rotate. Every change re-renders at once.
- Mix: a source and a destination seed, the levels taken from the source, optionally a second
  network for the destination (layer swapping), as `stylegen mix`.
- Project: upload a photo, watch the projection's progress; the result becomes a photo of Explore.
Each tab saves what it shows: the PNG, the ws file, the network (the swapped one after a mix).

Handlers return (outputs..., status). A user error (a bad network file, a ws file that does not
fit) leaves the images as they were and puts the CLI's one-line `Error: ...` into the status
line; anything else is a bug and is raised (Gradio shows it and logs the traceback).
"""

from __future__ import annotations

import functools
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a local page

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from stylegen.formats import bundled  # noqa: E402
from stylegen.ui.studio import Studio, error_line, is_user_error  # noqa: E402

NUM_DIRECTIONS = 5  # direction sliders on the page
STRENGTH = 10.0  # slider range +-
SPLITS = ["coarse", "middle", "fine"]
LEVELS = ["all", "coarse", "middle", "fine"]
SEED_MAX = 99999
SEED_CHOICE = "(seed)"
IMAGE_HEIGHT = 384
# Small networks are shown enlarged: nearest-neighbour, so what you see is the PNG's pixels.
CSS = """
.sg-image img {width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated}
#status {min-height: 3em}
"""
# System fonts only: the default theme would ask Google Fonts from the user's browser.
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def _guard(outputs: int):
    """Wrap a handler: a user error keeps the `outputs` components unchanged and shows its line."""

    def wrap(fn):
        @functools.wraps(fn)  # Gradio reads the signature (gr.Progress defaults) through __wrapped__
        def handler(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                if not is_user_error(e):
                    raise
                return (*[gr.update()] * outputs, error_line(e))

        return handler

    return wrap


def _shown(label: str, elem_id: str, height: int = IMAGE_HEIGHT) -> gr.Image:
    """An output image: lossless PNG, enlarged without smoothing."""
    return gr.Image(
        format="png", label=label, interactive=False, height=height, elem_id=elem_id, elem_classes="sg-image"
    )


def _network_info(net) -> str:
    G = net.G
    family = "StyleGAN3" if net.is_stylegan3 else "StyleGAN2"
    return f"{net.name}: {family}, {G.img_resolution}x{G.img_resolution}, {G.num_ws} ws, w_dim {G.w_dim}"


def build(studio: Studio, network: str | None = None) -> gr.Blocks:
    """The page's Blocks; `network` is the one chosen at start (a bundled name or a path)."""
    start = network or bundled.DEFAULT

    # ---- Explore -------------------------------------------------------------------------
    @_guard(outputs=2)
    def explore(ref, seed, psi, photo, levels, tx, ty, rot, *strengths):
        net = studio.network(ref)
        photo = None if photo in (None, "", SEED_CHOICE) else photo
        ws = studio.base_ws(net, seed, psi, photo)
        ws = studio.edited_ws(net, ws, levels, strengths)
        image = studio.render(net, ws, (tx, ty), rot)
        state = {"ref": ref, "ws": ws.cpu(), "seed": None if photo else int(seed), "psi": float(psi), "image": image}
        moved = (tx, ty, rot) != (0, 0, 0)
        note = " (translate / rotate: StyleGAN3 only, ignored)" if moved and not net.is_stylegan3 else ""
        return image, state, _network_info(net) + note

    @_guard(outputs=1)
    def load_ws(ref, file):
        net = studio.network(ref)
        names = studio.load_ws_photo(net, file)
        choices = [SEED_CHOICE, *studio.photos]
        return gr.update(choices=choices, value=names[0]), f"Loaded {len(names)} photo(s) from {os.path.basename(file)}"

    # ---- Mix -----------------------------------------------------------------------------
    @_guard(outputs=4)
    def mix(ref, dst_ref, src_seed, dst_seed, split, psi):
        src = studio.network(ref)
        dst = src if dst_ref in (None, "", "(same)") else studio.network(dst_ref)
        src_ws, dst_ws = studio.seed_ws(src, src_seed, psi), studio.seed_ws(dst, dst_seed, psi)
        image, G, ws = studio.mix(src, dst, src_ws, dst_ws, split)
        swapped = None if src is dst else G  # the layer-swapped generator, what "Save network" writes
        state = {"ref": ref, "ws": ws.cpu(), "seed": None, "psi": float(psi), "image": image, "swapped": swapped}
        swap = "" if src is dst else f", layers swapped with {dst.name}"
        return (
            studio.render(src, src_ws),
            studio.render(dst, dst_ws),
            image,
            state,
            f"Mixed: seed {int(dst_seed)} with the {split} styles of seed {int(src_seed)}{swap}",
        )

    # ---- Project -------------------------------------------------------------------------
    @_guard(outputs=3)
    def project(ref, image, steps, distance, w_plus, progress=gr.Progress()):  # noqa: B008 -- Gradio's way to ask for a progress bar
        if image is None:
            return gr.update(), gr.update(), gr.update(), "Error: upload a photo first"
        net = studio.network(ref)
        steps = int(steps)
        progress((0, steps), desc="Projecting")
        name, result = studio.project(
            net,
            np.asarray(image),
            steps,
            distance,
            w_plus,
            progress=lambda step, loss: progress((step + 1, steps), desc=f"Projecting, loss {loss:.4f}"),
        )
        state = {"ref": ref, "ws": result.ws, "seed": None, "psi": 1.0, "image": result.image}
        choices = [SEED_CHOICE, *studio.photos]
        done = f"{name}: PSNR {result.psnr_start:.2f} dB -> {result.psnr:.2f} dB in {steps} steps; choose it in Explore"
        return result.image, state, gr.update(choices=choices), done

    # ---- Downloads -----------------------------------------------------------------------
    @_guard(outputs=1)
    def save(state, what):
        if not state:
            return gr.update(), "Error: nothing to save yet"
        net = studio.network(state["ref"])
        name = "image" if state.get("seed") is None else f"seed{state['seed']:04d}"
        if what == "png":
            path = studio.write_png(state["image"], name)
        elif what == "ws":
            path = studio.write_ws(net, state["ws"], name, state.get("seed"), state["psi"])
        else:
            swapped = state.get("swapped")
            path = studio.write_network(swapped or net.G, net.path.stem + ("" if swapped is None else "-swapped"))
        return str(path), f"Wrote {path.name}"

    with gr.Blocks(title="stylegen", analytics_enabled=False) as page:
        gr.Markdown("## stylegen")
        with gr.Row():
            net_box = gr.Dropdown(
                choices=bundled.names(),
                value=start,
                allow_custom_value=True,
                label="Network (a bundled name or a file path)",
                elem_id="network",
                scale=3,
            )
            status = gr.Markdown(elem_id="status")
        with gr.Tab("Explore"):
            with gr.Row():
                with gr.Column():
                    seed = gr.Slider(0, SEED_MAX, value=0, step=1, label="Seed", elem_id="seed")
                    psi = gr.Slider(0, 1.5, value=1.0, step=0.05, label="Truncation psi", elem_id="psi")
                    photo = gr.Dropdown([SEED_CHOICE], value=SEED_CHOICE, label="Image from", elem_id="photo")
                    ws_file = gr.UploadButton("Load a ws file (.npz)", file_types=[".npz"], type="filepath", size="sm")
                    levels = gr.Dropdown(LEVELS, value="all", label="Directions of the levels", elem_id="levels")
                    sliders = [
                        gr.Slider(-STRENGTH, STRENGTH, value=0, step=0.25, label=f"Direction {k}", elem_id=f"dir{k}")
                        for k in range(NUM_DIRECTIONS)
                    ]
                    with gr.Accordion("StyleGAN3: move and turn the input", open=False):
                        tx = gr.Slider(-1, 1, value=0, step=0.01, label="translate x")
                        ty = gr.Slider(-1, 1, value=0, step=0.01, label="translate y")
                        rot = gr.Slider(-180, 180, value=0, step=1, label="rotate (degrees)")
                with gr.Column():
                    image = _shown("Image", "image")
                    explore_state = gr.State({})
                    with gr.Row():
                        buttons = [
                            gr.Button(f"Save {w}", elem_id=f"save_{w}", size="sm") for w in ("png", "ws", "network")
                        ]
                    explore_file = gr.File(label="Download", elem_id="explore_file", interactive=False, height=70)
        with gr.Tab("Mix"):
            with gr.Row():
                with gr.Column():
                    dst_net = gr.Dropdown(
                        ["(same)", *bundled.names()],
                        value="(same)",
                        allow_custom_value=True,
                        label="Destination network (another one: layer swapping)",
                        elem_id="dst_network",
                    )
                    src_seed = gr.Number(
                        value=0, precision=0, minimum=0, label="Source seed (its styles)", elem_id="src_seed"
                    )
                    dst_seed = gr.Number(value=5, precision=0, minimum=0, label="Destination seed", elem_id="dst_seed")
                    split = gr.Dropdown(
                        SPLITS,
                        value="coarse",
                        allow_custom_value=True,
                        label="Levels from the source (coarse / middle / fine / a resolution / ws:LIST)",
                        elem_id="split",
                    )
                    mix_psi = gr.Slider(0, 1.5, value=1.0, step=0.05, label="Truncation psi")
                    mix_btn = gr.Button("Mix", variant="primary", elem_id="mix_btn")
                with gr.Column():
                    with gr.Row():
                        src_img = _shown("Source", "src_image", height=192)
                        dst_img = _shown("Destination", "dst_image", height=192)
                    mixed = _shown("Mixed", "mixed")
                    mix_state = gr.State({})
                    with gr.Row():
                        mix_buttons = [
                            gr.Button(f"Save {w}", size="sm", elem_id=f"mix_save_{w}") for w in ("png", "ws", "network")
                        ]
                    mix_file = gr.File(label="Download", interactive=False, elem_id="mix_file", height=70)
        with gr.Tab("Project"):
            with gr.Row():
                with gr.Column():
                    upload = gr.Image(label="Photo", type="numpy", image_mode="RGB", elem_id="upload")
                    steps = gr.Slider(10, 1000, value=300, step=10, label="Steps", elem_id="steps")
                    distance = gr.Radio(
                        ["offline", "lpips"], value="offline", label="Distance (lpips needs the VGG16 weights)"
                    )
                    w_plus = gr.Checkbox(label="W+ (one w per ws)")
                    project_btn = gr.Button("Project", variant="primary", elem_id="project_btn")
                with gr.Column():
                    projected = _shown("Projected", "projected")
                    project_state = gr.State({})
                    project_save = gr.Button("Save ws", size="sm", elem_id="project_save_ws")
                    project_file = gr.File(label="Download", interactive=False, elem_id="project_file", height=70)

        explore_inputs = [net_box, seed, psi, photo, levels, tx, ty, rot, *sliders]
        explore_outputs = [image, explore_state, status]
        fast = {"show_progress": "hidden", "trigger_mode": "always_last", "queue": False}
        for control in [net_box, seed, psi, photo, levels, tx, ty, rot, *sliders]:
            control.change(explore, explore_inputs, explore_outputs, **fast)
        page.load(explore, explore_inputs, explore_outputs, **fast)
        ws_file.upload(load_ws, [net_box, ws_file], [photo, status])
        mix_btn.click(
            mix, [net_box, dst_net, src_seed, dst_seed, split, mix_psi], [src_img, dst_img, mixed, mix_state, status]
        )
        project_outputs = [projected, project_state, photo, status]
        project_inputs = [net_box, upload, steps, distance, w_plus]
        project_btn.click(project, project_inputs, project_outputs, show_progress_on=projected)
        for btn, what in zip(buttons, ("png", "ws", "network")):
            btn.click(lambda s, w=what: save(s, w), [explore_state], [explore_file, status])
        for btn, what in zip(mix_buttons, ("png", "ws", "network")):
            btn.click(lambda s, w=what: save(s, w), [mix_state], [mix_file, status])
        project_save.click(lambda s: save(s, "ws"), [project_state], [project_file, status])
    return page


def launch(page: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, share: bool = False, block: bool = True):
    """Serve the page on host:port (127.0.0.1 by default: this machine only; `share` opens a
    public Gradio link and is off unless asked for). Returns (app, local_url)."""
    app, url, _ = page.launch(
        server_name=host,
        server_port=port,
        share=share,
        prevent_thread_lock=not block,
        inbrowser=False,
        quiet=True,
        theme=THEME,
        css=CSS,
        ssr_mode=False,
        mcp_server=False,
        footer_links=[],
    )
    return app, url
