"""Command-line arguments in another tool's style answered with dlcli's: ``--epochs 5``
(Keras, Lightning) and a bare ``training.epochs=5`` (Hydra) get the ``--set`` form."""

import click


def config_key(name: str) -> str | None:
    """The config key path an option-like name stands for (``epochs`` -> training.epochs)."""
    from dlcli.config.schema import DATA, MODEL, TOP, TRAINING, misplaced

    name = name.replace("-", "_")
    for prefix, section in (("", TOP), ("data.", DATA), ("model.", MODEL),
                            ("training.", TRAINING)):
        if name in section and not (prefix == "" and name in ("data", "model", "training")):
            return prefix + name
    return misplaced("", name)


def _full_key(token: str) -> str:
    """``epochs=5`` -> ``training.epochs=5``; a key path already whole is kept."""
    from dlcli.config.schema import TOP

    key, _, value = token.partition("=")
    if "." in key or "[" in key or key in TOP:
        return token
    return f"{config_key(key) or key}={value}"


def set_form_hint(args: list[str], exc) -> str | None:
    """``--epochs 5`` or a bare ``training.epochs=5`` (Hydra) answered with the --set form."""
    import re

    if isinstance(exc, click.NoSuchOption):
        option = exc.option_name
        key = config_key(option.lstrip("-"))
        if key is None:
            return None
        value = "VALUE"
        for i, token in enumerate(args):
            if token == option and i + 1 < len(args):
                value = args[i + 1]
            elif token.startswith(option + "="):
                value = token.split("=", 1)[1]
        return (f"no option {option}; config keys are changed with --set: "
                f"--set {key}={value}")
    if "unexpected extra argument" in exc.format_message():
        bare = [t for i, t in enumerate(args) if re.match(r"^[A-Za-z_][\w.\[\]]*=", t)
                and (i == 0 or args[i - 1] != "--set")]
        if bare:
            return ("config keys are changed with --set: "
                    + " ".join(f"--set {_full_key(t)}" for t in bare))
    return None
