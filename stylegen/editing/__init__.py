"""Editing generated and real images: style mixing, layer swapping, projection."""
