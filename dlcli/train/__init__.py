"""Training: the loop, callbacks, metrics, checkpoints and run directories."""
