"""The memory check before training allocates: what a run needs (the step memory ``dlcli
shapes`` reports, plus the data) against the memory this process can have, refused in one
line naming the figure and the key to lower. Linux only: elsewhere nothing is checked.

Available memory is the smallest of: ``MemAvailable`` in ``/proc/meminfo``; the limit of
this process's cgroup (v2 ``memory.max``, v1 ``memory.limit_in_bytes``, and the cgroups
above it) less what the cgroup uses; and the address-space limit (``ulimit -v``) less the
address space already in use.
"""

import dataclasses
import pathlib
import re

from dlcli.data.footprint import one_hot_bytes, prepared_bytes, synthetic_bytes
from dlcli.errors import ConfigError, human_bytes
from dlcli.nn.memory import layer_table

CGROUP_ROOT = pathlib.Path("/sys/fs/cgroup")
# What the layers' own keys are called, for the one to lower.
SIZE_KEYS = ("units", "filters")


def available_bytes() -> int | None:
    """Bytes this process can still allocate, or None where it cannot be told (no
    ``/proc/meminfo``: not Linux)."""
    meminfo = _read("/proc/meminfo")
    found = re.search(r"^MemAvailable:\s+(\d+) kB", meminfo or "", re.M)
    if not found:
        return None
    figures = [int(found.group(1)) * 1024, *_cgroup_room()]
    import resource
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    used = re.search(r"^VmSize:\s+(\d+) kB", _read("/proc/self/status") or "", re.M)
    if limit != resource.RLIM_INFINITY and used:
        figures.append(limit - int(used.group(1)) * 1024)
    return max(0, min(figures))


def _read(path) -> str | None:
    try:
        return pathlib.Path(path).read_text()
    except OSError:
        return None


def _cgroup_room() -> list[int]:
    """Limit less use of this process's memory cgroup and each cgroup above it."""
    room = []
    for line in (_read("/proc/self/cgroup") or "").splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        _, controllers, path = fields
        if controllers == "":  # v2
            folder, limit, usage = CGROUP_ROOT, "memory.max", "memory.current"
        elif "memory" in controllers.split(","):
            folder, limit, usage = CGROUP_ROOT / "memory", "memory.limit_in_bytes", \
                "memory.usage_in_bytes"
        else:
            continue
        here = folder / path.lstrip("/")
        while True:
            most, now = _read(here / limit), _read(here / usage)
            if most and now and most.strip().isdigit() and now.strip().isdigit():
                room.append(int(most) - int(now))
            if here == folder or folder not in here.parents:
                break
            here = here.parent
    return room


@dataclasses.dataclass
class MemoryBudget:
    """The memory a run may use, measured once before its data are loaded."""

    available: int

    @classmethod
    def measure(cls) -> "MemoryBudget | None":
        available = available_bytes()
        return None if available is None else cls(available)

    def check_data(self, config, dtype, targets: bool) -> None:
        """Before a synthetic data set is generated: do its arrays alone fit?"""
        source = str(config["data"]["source"])
        if not source.startswith("synthetic:"):
            return
        from dlcli.data.synthetic import validate_params
        from dlcli.registry import DATASETS
        name = source[len("synthetic:"):]
        if name not in DATASETS:
            return  # refused with its own message when the data are made
        params, problems = validate_params(name, config["data"].get("params") or {})
        if problems:
            return  # refused with its own message when the data are made
        need = synthetic_bytes(name, params, dtype, targets)
        if need > self.available:
            raise ConfigError([("data.params.n_samples",
                                f"the data set alone ({source}) needs about "
                                f"{human_bytes(need)}, {human_bytes(self.available)} is "
                                "available; lower data.params.n_samples")], file=config.source)

    def check_step(self, config, model, splits, task: str, loss) -> None:
        """After the data are loaded and the model is shaped, before any weight exists:
        do the step's memory (``dlcli shapes``), the data and the targets fit?"""
        need = step_need(config, model, splits, task, loss)
        total = sum(need[k] for k in ("weights", "activations", "data", "one_hot"))
        if total <= self.available:
            return
        key, lower = _key_to_lower(config, need)
        raise ConfigError([(key, f"this run needs about {human_bytes(total)} for a step of "
                                 f"batch {need['batch']} (parameters, gradients and optimizer "
                                 f"state {human_bytes(need['weights'])}, activations and work "
                                 f"arrays {human_bytes(need['activations'])}, data "
                                 f"{human_bytes(need['data'] + need['one_hot'])}), "
                                 f"{human_bytes(self.available)} is available; {lower}")],
                          file=config.source)


def step_need(config, model, splits, task: str, loss) -> dict:
    """Bytes a run needs: ``weights`` (parameters, gradients, optimizer state),
    ``activations`` (kept activations and layer workspaces) of one step of the batch size,
    as ``dlcli shapes`` reports them; ``data`` (the prepared splits) and ``one_hot`` (the
    one-hot rows a loss other than categorical cross-entropy takes for class labels); with
    ``batch`` and the ``dlcli shapes`` rows (``layers``)."""
    batch = config["training"]["batch_size"]
    batch = len(splits.x_train) if batch == "full" else batch
    table = layer_table(model, batch, config["training"]["optimizer"])
    memory = table["memory_bytes"]
    one_hot = 0
    if task == "classification" and loss.name != "categorical_crossentropy":
        one_hot = one_hot_bytes(splits, model.dtype)
    return {"batch": batch, "layers": table["layers"],
            "weights": memory["parameters"] + memory["gradients"] + memory["optimizer_state"],
            "activations": memory["activations"] + memory["workspaces"],
            "data": prepared_bytes(splits), "one_hot": one_hot}


def _key_to_lower(config, need) -> tuple[str, str]:
    """(the key the message is about, what to lower) for the largest part of the need: the
    widest layer behind it (``units`` or ``filters``), or the data's size."""
    rows = need["layers"]  # rows[0] is the input, rows[i + 1] is model.layers[i]
    weights, activations, data, hot = (need[k] for k in ("weights", "activations", "data",
                                                         "one_hot"))
    biggest = max(weights, activations, data + hot)
    if biggest == data + hot:
        if hot > data:
            return "model.loss", ("use loss: categorical_crossentropy (it takes class "
                                  "labels, not one-hot rows)")
        if str(config["data"]["source"]).startswith("synthetic:"):
            return "data.params.n_samples", "lower data.params.n_samples"
        return "data.source", "use a smaller data set"
    if biggest == weights:
        index = max(range(len(rows) - 1), key=lambda i: rows[i + 1]["params"])
        if rows[index]["size"] > rows[index + 1]["size"]:  # its input makes it large
            wider = _widest(rows, index - 1)
            index = index if wider is None else wider
        key = _sized(config, index)
        return (key or f"model.layers[{index}]"), f"lower {key or 'its size'}"
    key = _sized(config, _widest(rows, len(rows) - 2))
    if key is None or max(r["size"] for r in rows[1:]) <= rows[0]["size"]:
        return "training.batch_size", "lower training.batch_size"
    return key, f"lower {key} or training.batch_size"


def _widest(rows, last: int) -> int | None:
    """The layer up to ``last`` with the largest output, or None."""
    if last < 0:
        return None
    return max(range(last + 1), key=lambda i: rows[i + 1]["size"])


def _sized(config, index) -> str | None:
    """The ``units`` or ``filters`` key that sets the size of layer ``index``'s output: its
    own, else that of the nearest layer before it that has one."""
    layers = config["model"]["layers"]
    for i in range(index if index is not None else -1, -1, -1):
        for name in SIZE_KEYS:
            if name in layers[i]:
                return f"model.layers[{i}].{name}"
    return None
