"""Live progress: a rich bar on a terminal, one plain line per epoch otherwise."""

import time

from dlcli.train.trainer import Callback


def format_logs(logs: dict, keys=None) -> str:
    keys = keys or [k for k in logs if k not in ("epoch", "time", "best", "lr")]
    parts = []
    for key in keys:
        value = logs.get(key)
        if isinstance(value, float):
            parts.append(f"{key} {value:.4f}")
    return "  ".join(parts)


class Progress(Callback):
    """Shows epochs and batches. ``interactive`` selects the live bar (a TTY); otherwise
    exactly one line per epoch is printed, which a log file can hold."""

    def __init__(self, console, interactive: bool, quiet: bool = False):
        self.console = console
        self.interactive = interactive and not quiet
        self.quiet = quiet
        self._progress = None

    def on_train_begin(self, trainer):
        self.started = time.perf_counter()
        if self.interactive:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as Bar,
                                       TextColumn, TimeElapsedColumn)
            from rich.table import Column
            whole = dict(table_column=Column(no_wrap=True))  # a field is never split
            fields = len(f"epoch {trainer.epochs}/{trainer.epochs}") + 2 * len(
                str(trainer.batches_per_epoch)) + 1 + len("loss 0.0000 lr 0.001 0:00:00") + 5
            bar = max(5, min(40, self.console.width - fields - 1))
            self._progress = Bar(TextColumn("epoch {task.fields[epoch]}", **whole),
                                 BarColumn(bar_width=bar), MofNCompleteColumn(**whole),
                                 TextColumn("loss {task.fields[loss]}", **whole),
                                 TextColumn("lr {task.fields[lr]}", **whole),
                                 TimeElapsedColumn(**whole), console=self.console,
                                 transient=True)
            self._progress.start()
            self._task = self._progress.add_task("train", total=trainer.batches_per_epoch,
                                                 epoch="", loss="-", lr="-")

    def on_epoch_begin(self, trainer, epoch):
        if self._progress is not None:
            self._progress.reset(self._task, total=trainer.batches_per_epoch,
                                 epoch=f"{epoch}/{trainer.epochs}", loss="-",
                                 lr=f"{trainer.optimizer.lr:.3g}")

    def on_batch_end(self, trainer, batch, logs):
        if self._progress is not None:
            self._progress.update(self._task, completed=batch, loss=f"{logs['loss']:.4f}")

    def on_epoch_end(self, trainer, epoch, logs):
        if self.quiet:
            return
        width = len(str(trainer.epochs))
        mark = " *" if logs.get("best") else ""
        line = (f"epoch {epoch:>{width}}/{trainer.epochs}  {format_logs(logs)}"
                f"  lr {logs['lr']:.3g}  ({logs['time']:.2f}s){mark}")
        if self.console.is_terminal and len(line) > self.console.width:
            # A narrow terminal: break between "name value" fields, never inside one
            # (a file or pipe keeps exactly one line per epoch).
            from dlcli.terminal import fold_fields
            line = "\n".join(fold_fields(line.split("  "), self.console.width))
        self.console.print(line, highlight=False, markup=False, soft_wrap=True)

    def _stop(self):
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def on_train_end(self, trainer, logs):
        self._stop()

    def on_exception(self, trainer, exc):
        self._stop()
