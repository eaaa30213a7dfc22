"""StyleGAN3 generators designed from scratch: layer specs, low-pass filters, NVIDIA's initialisation.

Karras et al. 2021, "Alias-Free Generative Adversarial Networks", sec. 3 and appendix F. The
numbers follow NVIDIA's `SynthesisNetwork.__init__` / `SynthesisLayer.__init__`
(`training/networks_stylegan3.py`, facts in ../shared/compat/FORMAT.md "Layer specification"),
so a designed config equals the one read from their pickle of the same kwargs, and the filters
equal `scipy.signal.firwin` and their jinc design without importing scipy.

`design_config3` takes NVIDIA's *Generator* kwargs (flattened: mapping_kwargs become
mapping_layers / mapping_lr_multiplier / w_avg_beta). NVIDIA's train.py changes some of them
before it builds the Generator (`--cfg=stylegan3-r` doubles --cbase and --cmax; the magnitude
EMA decay depends on the batch); `train_preset_kwargs` applies exactly those adjustments, so a
training preset calls `design_config3(**train_preset_kwargs(...), img_resolution=R)`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from stylegen.errors import InputError
from stylegen.networks.sg3_generator import Generator3, Generator3Config
from stylegen.networks.sg3_synthesis import InputSpec, LayerSpec

ARCHITECTURES = ("stylegan3-t", "stylegan3-r")

# ---------------------------------------------------------------------------------------------
# Filter design (float64 numpy; the buffers are float32)


def kaiser_atten(numtaps: int, width: float) -> float:
    """Kaiser's estimate of the stop-band attenuation in dB; width in units of the Nyquist rate."""
    return 2.285 * (numtaps - 1) * math.pi * width + 7.95


def kaiser_beta(atten: float) -> float:
    """Kaiser window beta for an attenuation in dB (Oppenheim & Schafer, eq. 7.62)."""
    if atten > 50:
        return 0.1102 * (atten - 8.7)
    if atten > 21:
        return 0.5842 * (atten - 21) ** 0.4 + 0.07886 * (atten - 21)
    return 0.0


def firwin_kaiser(numtaps: int, cutoff: float, width: float, fs: float) -> np.ndarray:
    """`scipy.signal.firwin(numtaps, cutoff, width=width, fs=fs)`: windowed-sinc low-pass, float64 [numtaps].

    Ideal low-pass (sinc) times a Kaiser window whose beta gives the attenuation a transition
    band of `width` (Hz, like cutoff) allows, scaled to unit gain at DC.
    """
    nyq = 0.5 * fs
    if not 0 < cutoff < nyq:
        raise ValueError(f"firwin: cutoff {cutoff} must lie strictly between 0 and fs/2 = {nyq}")
    c = cutoff / nyq
    m = np.arange(numtaps, dtype=np.float64) - 0.5 * (numtaps - 1)
    h = c * np.sinc(c * m)
    h *= np.kaiser(numtaps, kaiser_beta(kaiser_atten(numtaps, float(width) / nyq)))
    return h / np.sum(h)


def bessel_j1(x: np.ndarray | float) -> np.ndarray:
    """J1, the Bessel function of the first kind of order 1, in float64 (absolute error ~1e-15).

    |x| <= 1: its power series (relative precision near 0). Otherwise Bessel's integral
    J1(x) = 1/(2 pi) int_0^{2 pi} cos(t - x sin t) dt by the trapezoidal rule, which for a
    periodic integrand only errs by the aliased terms J_{1 +- kN}(x): negligible for N > 2|x| + 40.
    (torch.special.bessel_j1 is off by up to 5e-7 near x = 5: too coarse for float32 filters.)
    """
    x = np.asarray(x, dtype=np.float64)
    half = x / 2
    term, series = half.copy(), half.copy()
    for k in range(1, 12):  # (x/2)^(2k+1) / (k! (k+1)!)
        term = term * (-half * half) / (k * (k + 1))
        series = series + term
    n = 2 * int(np.ceil(np.max(np.abs(x), initial=0.0))) + 40
    t = np.arange(n) * (2 * np.pi / n)
    integral = np.cos(t - x[..., None] * np.sin(t)).mean(axis=-1)
    return np.where(np.abs(x) <= 1, series, integral)


def jinc_lowpass(numtaps: int, cutoff: float, width: float, fs: float) -> np.ndarray:
    """Radially symmetric low-pass, float64 [numtaps, numtaps] summing to 1 (paper, appendix F.2).

    The 2-D ideal disc low-pass J1(2 pi cutoff r) / (pi r) (r = a tap's distance from the
    centre, taps at (j - (numtaps - 1) / 2) / fs), times the outer product of the 1-D Kaiser
    window firwin would use. At r = 0 (odd numtaps) it takes its limit, `cutoff`.
    """
    nyq = 0.5 * fs
    if not 0 < cutoff < nyq:
        raise ValueError(f"jinc filter: cutoff {cutoff} must lie strictly between 0 and fs/2 = {nyq}")
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(x[None, :], x[:, None])
    safe = np.where(r > 0, r, 1.0)
    f = np.where(r > 0, bessel_j1(2 * cutoff * (np.pi * safe)) / (np.pi * safe), cutoff)
    w = np.kaiser(numtaps, kaiser_beta(kaiser_atten(numtaps, width / nyq)))
    f = f * np.outer(w, w)
    return f / np.sum(f)


def design_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False):
    """A layer's up or down filter as NVIDIA designs it: None for one tap, else float32 [numtaps]
    (separable Kaiser) or [numtaps, numtaps] (radial)."""
    if numtaps < 1:
        raise ValueError(f"filter: numtaps must be >= 1; got {numtaps}")
    if numtaps == 1:
        return None
    f = jinc_lowpass(numtaps, cutoff, width, fs) if radial else firwin_kaiser(numtaps, cutoff, width, fs)
    return torch.as_tensor(f, dtype=torch.float32)


def layer_filters(spec: LayerSpec) -> dict[str, torch.Tensor]:
    """The designed up_filter / down_filter buffers of one layer (one-tap filters absent)."""
    if spec.up_taps == 1 and spec.down_taps == 1:
        return {}
    if spec.in_half_width is None or spec.out_half_width is None:
        raise ValueError(f"layer {spec.name}: no transition half-widths in its spec; design it with design_config3")
    fs = spec.in_sampling_rate * spec.up_factor  # the rate of the leaky ReLU
    up = design_lowpass_filter(spec.up_taps, spec.in_cutoff, spec.in_half_width * 2, fs)
    down = design_lowpass_filter(spec.down_taps, spec.out_cutoff, spec.out_half_width * 2, fs, spec.down_radial)
    return {name: f for name, f in (("up_filter", up), ("down_filter", down)) if f is not None}


# ---------------------------------------------------------------------------------------------
# Layer specs


def design_config3(
    *,
    z_dim: int = 512,  # input latent size
    c_dim: int = 0,  # conditioning label size, 0 = unconditional
    w_dim: int = 512,  # intermediate latent size
    img_resolution: int,  # output resolution (a power of two)
    img_channels: int = 3,  # output image channels
    architecture: str = "stylegan3-t",  # the defaults of conv_kernel and use_radial_filters
    channel_base: int = 32768,  # channels = min(channel_base / 2 / cutoff, channel_max)
    channel_max: int = 512,  # (the Generator's values: train.py doubles both for -r)
    mapping_layers: int = 2,  # fully connected layers of the mapping network
    mapping_lr_multiplier: float = 0.01,  # learning-rate multiplier of the mapping layers
    w_avg_beta: float = 0.998,  # decay of the tracked average w
    num_layers: int = 14,  # synthesis layers, excluding the input and the RGB layer
    num_critical: int = 2,  # critically sampled layers at the end
    first_cutoff: float = 2,  # cutoff frequency of the first layer f_{c,0}
    first_stopband: float = 2**2.1,  # minimum stop band of the first layer f_{t,0}
    last_stopband_rel: float = 2**0.3,  # minimum stop band of the last layer, relative to its cutoff
    margin_size: int = 10,  # extra pixels around the image in the non-final layers
    output_scale: float = 0.25,  # the RGB layer's output is multiplied by this
    conv_kernel: int | None = None,  # None: 3 for stylegan3-t, 1 for stylegan3-r (the RGB layer: 1)
    filter_size: int = 6,  # low-pass taps per factor of up/down-sampling
    lrelu_upsampling: int = 2,  # the leaky ReLU runs at this times the higher of the two rates
    use_radial_filters: bool | None = None,  # None: False for -t, True for -r (critical layers: never)
    conv_clamp: float | None = 256,  # clamp inside filtered_lrelu, None = off
    magnitude_ema_beta: float = 0.999,  # decay of the tracked input magnitude (train.py: 0.5 ** (batch / 2e4))
) -> Generator3Config:
    """The Generator3Config NVIDIA's `Generator(**kwargs)` lays out (InputError for bad values).

    Paper sec. 3.2 / appendix F: cutoffs and minimum stop bands rise geometrically from the
    first layer to the last critically sampled ones; each layer's sampling rate is the smallest
    power of two above twice its stop band (at most the image resolution).
    """
    if architecture not in ARCHITECTURES:
        raise InputError(f"architecture must be one of {', '.join(ARCHITECTURES)}; got {architecture!r}")
    radial = architecture == "stylegan3-r"
    conv_kernel = (1 if radial else 3) if conv_kernel is None else conv_kernel
    use_radial_filters = radial if use_radial_filters is None else use_radial_filters
    _check_design_args(locals())
    R, N = img_resolution, num_layers

    # Geometric progression of cutoffs f_c and minimum stop bands f_t (appendix F.1).
    last_cutoff = R / 2
    last_stopband = last_cutoff * last_stopband_rel
    exponents = np.minimum(np.arange(N + 1) / (N - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, R))))
    half_widths = np.maximum(stopbands, rates / 2) - cutoffs
    sizes = rates + margin_size * 2
    sizes[-2:] = R
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels

    clamp = None if conv_clamp is None else float(conv_clamp)
    layers = []
    for i in range(N + 1):
        p = max(i - 1, 0)
        layer = dict(in_channels=int(channels[p]), out_channels=int(channels[i]), in_size=int(sizes[p]))
        layer.update(out_size=int(sizes[i]), in_rate=int(rates[p]), out_rate=int(rates[i]))
        layer.update(in_cutoff=float(cutoffs[p]), out_cutoff=float(cutoffs[i]))
        layer.update(in_half_width=float(half_widths[p]), out_half_width=float(half_widths[i]))
        critical = i >= N - num_critical
        layers.append(
            _layer_spec(
                i,
                is_torgb=i == N,
                critical=critical,
                radial=use_radial_filters and not critical,
                **layer,
                conv_kernel=conv_kernel,
                filter_size=filter_size,
                lrelu_upsampling=lrelu_upsampling,
                conv_clamp=clamp,
                magnitude_ema_beta=float(magnitude_ema_beta),
            )
        )
    inp = InputSpec(int(channels[0]), (int(sizes[0]),) * 2, float(rates[0]), float(cutoffs[0]))
    return Generator3Config(
        z_dim=z_dim,
        c_dim=c_dim,
        w_dim=w_dim,
        img_resolution=R,
        img_channels=img_channels,
        input=inp,
        layers=tuple(layers),
        mapping_layers=mapping_layers,
        mapping_lr_multiplier=float(mapping_lr_multiplier),
        w_avg_beta=float(w_avg_beta),
        output_scale=float(output_scale),
        channel_base=channel_base,
        channel_max=channel_max,
    )


def _layer_spec(
    idx,
    *,
    is_torgb,
    critical,
    radial,
    in_size,
    out_size,
    in_rate,
    out_rate,
    conv_kernel,
    filter_size,
    lrelu_upsampling,
    **rest,
) -> LayerSpec:
    """One layer: the leaky ReLU's rate, the up/down factors and taps, the padding (appendix C.3)."""
    tmp_rate = max(in_rate, out_rate) * (1 if is_torgb else lrelu_upsampling)
    up, down = round(tmp_rate / in_rate), round(tmp_rate / out_rate)
    if in_rate * up != tmp_rate or out_rate * down != tmp_rate:
        raise InputError(f"layer {idx}: rates {in_rate} -> {tmp_rate} -> {out_rate} are not integer multiples")
    up_taps = filter_size * up if up > 1 and not is_torgb else 1
    down_taps = filter_size * down if down > 1 and not is_torgb else 1
    k = 1 if is_torgb else conv_kernel
    # The filters' valid output, downsampled, must be out_size; the low side gets the extra
    # up // 2 pixels so samples sit at the centres of the symmetric interpretation.
    pad_total = (out_size - 1) * down + 1 - (in_size + k - 1) * up + up_taps + down_taps - 2
    pad_lo = (pad_total + up) // 2
    pad_hi = pad_total - pad_lo
    for which, cutoff in (("in", rest["in_cutoff"]), ("out", rest["out_cutoff"])):
        taps = up_taps if which == "in" else down_taps
        if taps > 1 and not 0 < cutoff < tmp_rate / 2:
            raise InputError(f"layer {idx}: {which} cutoff {cutoff:g} is not below half its filter rate {tmp_rate}")
    return LayerSpec(
        name=f"L{idx}_{out_size}_{rest['out_channels']}",
        is_torgb=is_torgb,
        is_critically_sampled=critical,
        in_size=(in_size, in_size),
        out_size=(out_size, out_size),
        in_sampling_rate=float(in_rate),
        out_sampling_rate=float(out_rate),
        conv_kernel=k,
        up_factor=up,
        down_factor=down,
        up_taps=up_taps,
        down_taps=down_taps,
        down_radial=radial,
        padding=(pad_lo, pad_hi, pad_lo, pad_hi),
        **rest,
    )


def _check_design_args(a: dict) -> None:
    positive = ("w_dim", "img_channels", "channel_base", "channel_max", "mapping_layers", "num_layers")
    for key in positive + ("conv_kernel", "filter_size", "lrelu_upsampling"):
        if isinstance(a[key], bool) or not isinstance(a[key], int) or a[key] < 1:
            raise InputError(f"{key} must be a positive integer; got {a[key]!r}")
    for key in ("z_dim", "c_dim", "margin_size", "num_critical"):
        if isinstance(a[key], bool) or not isinstance(a[key], int) or a[key] < 0:
            raise InputError(f"{key} must be a non-negative integer; got {a[key]!r}")
    R = a["img_resolution"]
    if isinstance(R, bool) or not isinstance(R, int) or R < 4 or R & (R - 1):
        raise InputError(f"img_resolution must be a power of two >= 4; got {R!r}")
    if a["num_critical"] >= a["num_layers"]:
        raise InputError(f"num_critical ({a['num_critical']}) must be below num_layers ({a['num_layers']})")
    for key in ("first_cutoff", "first_stopband", "last_stopband_rel", "output_scale", "mapping_lr_multiplier"):
        if not (isinstance(a[key], (int, float)) and math.isfinite(a[key]) and a[key] > 0):
            raise InputError(f"{key} must be a positive number; got {a[key]!r}")
    for key in ("w_avg_beta", "magnitude_ema_beta"):
        if not (isinstance(a[key], (int, float)) and 0 <= a[key] <= 1):
            raise InputError(f"{key} must be in [0, 1]; got {a[key]!r}")
    if a["conv_clamp"] is not None and not (isinstance(a["conv_clamp"], (int, float)) and a["conv_clamp"] > 0):
        raise InputError(f"conv_clamp must be a positive number or None; got {a['conv_clamp']!r}")


def train_preset_kwargs(
    architecture: str,  # train.py --cfg: 'stylegan3-t' or 'stylegan3-r'
    *,
    cbase: int = 32768,  # train.py --cbase
    cmax: int = 512,  # train.py --cmax
    batch_size: int = 32,  # train.py --batch (total over GPUs)
    map_depth: int = 2,  # train.py --map-depth (its default for stylegan3)
) -> dict:
    """The design_config3 kwargs NVIDIA's train.py gives its Generator (z_dim = w_dim = 512 there).

    For stylegan3-r it doubles the capacity (channel_base = 2 cbase, channel_max = 2 cmax) next
    to the 1x1 kernels and radial filters; the discriminator keeps the undoubled values.
    """
    if architecture not in ARCHITECTURES:
        raise InputError(f"architecture must be one of {', '.join(ARCHITECTURES)}; got {architecture!r}")
    double = 2 if architecture == "stylegan3-r" else 1
    return dict(
        architecture=architecture,
        channel_base=cbase * double,
        channel_max=cmax * double,
        mapping_layers=map_depth,
        magnitude_ema_beta=0.5 ** (batch_size / (20 * 1e3)),
    )


# ---------------------------------------------------------------------------------------------
# NVIDIA's initialisation


def init_generator3(config: Generator3Config, seed: int | torch.Generator = 0) -> Generator3:
    """A trainable Generator3 initialised as NVIDIA's constructors do, on the CPU.

    Draws, from `seed` (an int or a CPU torch.Generator), in the order of NVIDIA's
    `Generator.__init__` (synthesis input, each layer, then the mapping), so the same torch seed
    gives NVIDIA's initial weights: conv weights N(0, 1), biases 0, style affines bias 1, the
    input's affine weight 0 and bias (1, 0, 0, 0) (identity rotation), Fourier frequencies
    uniform on the disc of radius bandwidth and phases uniform in [-0.5, 0.5), magnitude_ema 1,
    w_avg 0, designed filters. Torch's global RNG is left as it was.
    """
    if isinstance(seed, torch.Generator):
        if seed.device.type != "cpu":
            raise ValueError(f"init_generator3: the generator must be a CPU torch.Generator; got {seed.device}")
        gen = seed
    else:
        gen = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):  # the constructors' own draws are overwritten below
        G = Generator3(config)
    with torch.no_grad():
        _init_input(G.synthesis.input, gen)
        for name in G.synthesis.layer_names:
            _init_layer(getattr(G.synthesis, name), gen)
        if config.c_dim > 0:
            _init_fc(G.mapping.embed, gen)
        for i in range(config.mapping_layers):
            _init_fc(getattr(G.mapping, f"fc{i}"), gen)
        G.mapping.w_avg.zero_()
    return G


def _init_fc(fc, gen, weight_init: float = 1.0, bias_init=0.0) -> None:
    lr = fc.bias_gain  # the layer's learning-rate multiplier
    fc.weight.copy_(torch.randn(fc.weight.shape, generator=gen) * (weight_init / lr))
    if fc.bias is not None:  # float32 bias_init / lr_multiplier, as NVIDIA's numpy
        bias = np.broadcast_to(np.asarray(bias_init, dtype=np.float32), fc.bias.shape) / np.float32(lr)
        fc.bias.copy_(torch.as_tensor(bias))


def _init_input(inp, gen) -> None:
    c = inp.spec.channels
    # |g|^2 / 2 of a 2-D normal g is Exp(1), so radius^2 = exp(-|g|^2 / 2) is uniform: the disc.
    freqs = torch.randn([c, 2], generator=gen)
    radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
    freqs /= radii * radii.square().exp().pow(0.25)
    freqs *= inp.spec.bandwidth
    inp.freqs.copy_(freqs)
    inp.phases.copy_(torch.rand([c], generator=gen) - 0.5)
    inp.weight.copy_(torch.randn([c, c], generator=gen))
    _init_fc(inp.affine, gen, weight_init=0.0, bias_init=[1, 0, 0, 0])  # starts as the identity
    inp.transform.copy_(torch.eye(3))


def _init_layer(layer, gen) -> None:
    _init_fc(layer.affine, gen, bias_init=1.0)
    layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen))
    layer.bias.zero_()
    layer.magnitude_ema.fill_(1.0)
    for name, f in layer_filters(layer.spec).items():
        getattr(layer, name).copy_(f)
