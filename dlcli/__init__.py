"""dlcli: a config-driven deep-learning trainer on a transparent NumPy engine."""

__version__ = "0.1.0"
