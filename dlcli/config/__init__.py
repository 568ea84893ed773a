"""Config: safe YAML loading, ``--set`` overrides, validation and defaults.

``load_config(path, overrides)`` returns a validated :class:`Config` whose ``data`` is a
plain dict with every default filled in (what ``dlcli config`` prints and what a run
directory stores).
"""

from dlcli.config.resolve import Config, load_config, resolve

__all__ = ["Config", "load_config", "resolve"]
