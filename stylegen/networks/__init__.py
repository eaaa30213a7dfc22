"""The networks of the paper: layers, mapping, synthesis, generator, discriminator."""
