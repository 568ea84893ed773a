"""The NumPy engine: layers, activations, losses, initializers, optimizers, model."""
