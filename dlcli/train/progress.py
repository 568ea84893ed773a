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


def eta_text(seconds) -> str:
    """Remaining time for people: ``42s``, ``3m05s``, ``1h02m``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress(Callback):
    """Shows epochs and batches. ``interactive`` selects the live bar (a TTY); otherwise
    exactly one line per epoch is printed, which a log file can hold.

    ``header`` (``run_dir``, ``samples``: training/validation/test counts, ``params``,
    ``monitor``, ``resumed_at``): printed before the first epoch, with the legend of the
    ``*`` that marks an improved epoch. The live bar's ETA is the time per step so far
    times the steps left in the run."""

    def __init__(self, console, interactive: bool, quiet: bool = False, header=None):
        self.console = console
        self.interactive = interactive and not quiet
        self.quiet = quiet
        self.header = header
        self._progress = None

    def _print_header(self):
        h = self.header
        train, val, test = h["samples"]
        what = f"resuming {h['run_dir']} after epoch {h['resumed_at']}" \
            if h.get("resumed_at") is not None else f"training {h['run_dir']}"
        for line in (f"{what}: {train:,} training, {val:,} validation, {test:,} test samples; "
                     f"{h['params']:,} parameters",
                     f"(* marks an epoch where {h['monitor']} improved: the best checkpoint)"):
            self.console.print(line, highlight=False, markup=False, soft_wrap=True)

    def on_train_begin(self, trainer):
        self.started = time.perf_counter()
        self._steps, self._epoch = 0, 1
        if self.header is not None and not self.quiet:
            self._print_header()
        if self.interactive:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as Bar,
                                       TextColumn, TimeElapsedColumn)
            from rich.table import Column
            whole = dict(table_column=Column(no_wrap=True))  # a field is never split
            fields = len(f"epoch {trainer.epochs}/{trainer.epochs}") + 2 * len(
                str(trainer.batches_per_epoch)) + 1 + len("loss 0.0000 lr 0.001 0:00:00") + 5
            fields += len(" eta 00m00s")
            bar = max(5, min(40, self.console.width - fields - 1))
            self._progress = Bar(TextColumn("epoch {task.fields[epoch]}", **whole),
                                 BarColumn(bar_width=bar), MofNCompleteColumn(**whole),
                                 TextColumn("loss {task.fields[loss]}", **whole),
                                 TextColumn("lr {task.fields[lr]}", **whole),
                                 TimeElapsedColumn(**whole),
                                 TextColumn("eta {task.fields[eta]}", **whole),
                                 console=self.console,
                                 transient=True)
            self._progress.start()
            self._task = self._progress.add_task("train", total=trainer.batches_per_epoch,
                                                 epoch="", loss="-", lr="-", eta="-")

    def on_epoch_begin(self, trainer, epoch):
        self._epoch = epoch
        if self._progress is not None:
            self._progress.reset(self._task, total=trainer.batches_per_epoch,
                                 epoch=f"{epoch}/{trainer.epochs}", loss="-",
                                 lr=f"{trainer.optimizer.lr:.3g}",
                                 eta=self._progress.tasks[0].fields.get("eta", "-"))

    def on_batch_end(self, trainer, batch, logs):
        if self._progress is not None:
            self._steps += 1
            per_epoch = trainer.batches_per_epoch
            left = (trainer.epochs - self._epoch) * per_epoch + per_epoch - batch
            eta = (time.perf_counter() - self.started) / self._steps * left
            self._progress.update(self._task, completed=batch, loss=f"{logs['loss']:.4f}",
                                  eta=eta_text(eta))

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
