"""stylegen: style-based image generators (the StyleGAN2 family)."""

__version__ = "0.1.0"
