"""Training: config and presets, setup, the loop, losses, augmentation (ADA), datasets, snapshots."""
