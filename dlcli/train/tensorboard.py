"""TensorBoard scalars without TensorBoard: event files written by hand.

With ``training.tensorboard: true`` (or ``dlcli train --tensorboard``) a run writes, in
Keras' layout, ``<run>/tensorboard/train/events.out.tfevents.*`` and
``<run>/tensorboard/validation/events.out.tfevents.*``: per epoch (the step is the epoch
number of ``metrics.jsonl``) every metric under ``epoch_<name>`` — ``loss`` in train,
``val_loss`` as ``epoch_loss`` in validation, so TensorBoard draws the two in one chart —,
the learning rate as ``epoch_learning_rate`` and, with ``training.diagnostics``, each layer's
statistics as ``diagnostics/<layer>/<statistic>``. ``tensorboard --logdir runs/`` shows runs
(and sweep trials, which are runs) side by side.

Format. An event file is a sequence of TFRecords: ``uint64 length``, ``uint32
masked_crc32c(length)``, ``data``, ``uint32 masked_crc32c(data)``, all little-endian, with
``masked_crc(c) = ((c >> 15 | c << 17) + 0xa282ead8) mod 2^32`` over CRC-32C (Castagnoli).
Each ``data`` is an ``Event`` protocol buffer, encoded here field by field: ``wall_time``
(1, double), ``step`` (2, int64), ``file_version`` (3, string, the first record:
``brain.Event:2``), ``summary`` (5) holding ``Summary.Value``s (1) of ``tag`` (1, string) and
``simple_value`` (2, float32). TensorBoard stores scalars as float32: what it shows is
float32 of the value in metrics.jsonl.

On resume, the records after the checkpoint's epoch are dropped from the existing files
before training continues (the resumed run writes those epochs again), so no step appears
twice; a record cut short by a crash is dropped too. The epochs up to the checkpoint that
the files lack (all of them when TensorBoard is turned on only at ``--resume``) are written
from ``metrics.jsonl`` and ``diagnostics.jsonl``, in step order, so the files hold every
epoch of the run either way.
"""

from __future__ import annotations

import numbers
import os
import pathlib
import socket
import struct
import time

from dlcli.train.trainer import Callback

FILE_VERSION = "brain.Event:2"
SKIPPED = ("epoch", "best", "nonfinite")


# ---- CRC-32C and TFRecord framing ---------------------------------------------------------

def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) of ``data``."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
    """One TFRecord holding ``data``."""
    length = struct.pack("<Q", len(data))
    return (length + struct.pack("<I", masked_crc(length)) + data
            + struct.pack("<I", masked_crc(data)))


def read_records(raw: bytes) -> list[bytes]:
    """The data of each complete, intact record of an event file, in order; reading stops at
    a record cut short or damaged (a crash while appending)."""
    out, pos = [], 0
    while pos + 12 <= len(raw):
        header = raw[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (crc,) = struct.unpack("<I", raw[pos + 8:pos + 12])
        end = pos + 12 + length + 4
        if crc != masked_crc(header) or end > len(raw):
            break
        data = raw[pos + 12:pos + 12 + length]
        if struct.unpack("<I", raw[end - 4:end])[0] != masked_crc(data):
            break
        out.append(data)
        pos = end
    return out


# ---- Event protocol buffers -----------------------------------------------------------------

def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64 as protobuf encodes it (two's complement)
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _bytes_field(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _varint(len(payload)) + payload


def scalar_value(tag: str, value: float) -> bytes:
    """A ``Summary.Value`` with ``tag`` and ``simple_value`` (float32)."""
    return _bytes_field(1, tag.encode()) + _key(2, 5) + struct.pack("<f", value)


def event(wall_time: float, step: int | None = None, *, file_version: str | None = None,
          scalars: dict[str, float] | None = None) -> bytes:
    """An encoded ``Event``."""
    out = _key(1, 1) + struct.pack("<d", wall_time)
    if step is not None:
        out += _key(2, 0) + _varint(int(step))
    if file_version is not None:
        out += _bytes_field(3, file_version.encode())
    if scalars:
        summary = b"".join(_bytes_field(1, scalar_value(tag, value))
                           for tag, value in scalars.items())
        out += _bytes_field(5, summary)
    return out


def event_step(data: bytes) -> int | None:
    """The ``step`` of an encoded Event (None when it has none), reading its top-level fields."""
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
            if field == 2:
                return value - (1 << 64) if value >= 1 << 63 else value
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            pos += length
        else:
            return None
    return None


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


# ---- files ------------------------------------------------------------------------------------

class EventWriter:
    """Appends events to the one event file of ``directory`` (created with its
    ``file_version`` record when there is none)."""

    def __init__(self, directory: pathlib.Path):
        self.directory = pathlib.Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        existing = sorted(self.directory.glob("events.out.tfevents.*"))
        if existing:
            self.path = existing[-1]
        else:
            self.path = self.directory / (f"events.out.tfevents.{int(time.time())}."
                                          f"{socket.gethostname()}.{os.getpid()}.dlcli")
            self._append(frame(event(time.time(), 0, file_version=FILE_VERSION)))

    def _append(self, data: bytes) -> None:
        with open(self.path, "ab") as handle:
            handle.write(data)
            handle.flush()

    def scalars(self, step: int, values: dict[str, float], wall_time: float | None = None):
        if values:
            self._append(frame(event(time.time() if wall_time is None else wall_time, step,
                                     scalars=values)))


def truncate(directory: pathlib.Path, last_step: int) -> int:
    """Drop, from every event file in ``directory``, the records of steps after
    ``last_step`` and any damaged tail; returns how many records were dropped."""
    from dlcli.train.io import atomic_writer
    dropped = 0
    for path in sorted(pathlib.Path(directory).glob("events.out.tfevents.*")):
        raw = path.read_bytes()
        records = read_records(raw)
        kept = [r for r in records if (event_step(r) or 0) <= last_step]
        body = b"".join(frame(r) for r in kept)
        if body != raw:
            dropped += len(records) - len(kept)
            with atomic_writer(path) as handle:
                handle.write(body)
    return dropped


def backfill(directory: pathlib.Path, by_step: dict[int, dict[str, float]]) -> int:
    """Add to the event file of ``directory`` (created when there is none) an event for each
    step of ``by_step`` (step -> scalars) it has no event of, keeping the records in step
    order (TensorBoard drops the points after a step that goes back); returns how many."""
    from dlcli.train.io import atomic_writer
    writer = EventWriter(directory)
    records = read_records(writer.path.read_bytes())
    head = [r for r in records if (event_step(r) or 0) <= 0]  # file_version
    body = [r for r in records if (event_step(r) or 0) > 0]
    present = {event_step(r) for r in body}
    now = time.time()
    added = [event(now, step, scalars=values) for step, values in sorted(by_step.items())
             if step not in present and values]
    if added:
        body = sorted(body + added, key=event_step)  # stable: a step's records keep their order
        with atomic_writer(writer.path) as handle:
            handle.write(b"".join(frame(r) for r in head + body))
    return len(added)


# ---- the training callback ----------------------------------------------------------------------

def split_logs(logs: dict) -> tuple[dict[str, float], dict[str, float]]:
    """An epoch's logs as (train, validation) TensorBoard tags: ``val_x`` -> validation
    ``epoch_x``; ``lr`` -> ``epoch_learning_rate``; any other number ``x`` -> ``epoch_x``."""
    train, validation = {}, {}
    for key, value in logs.items():
        if key in SKIPPED or isinstance(value, bool) or not isinstance(value, numbers.Real):
            continue
        value = float(value)
        if key.startswith("val_"):
            validation[f"epoch_{key[4:]}"] = value
        elif key == "lr":
            train["epoch_learning_rate"] = value
        else:
            train[f"epoch_{key}"] = value
    return train, validation


def diagnostics_tags(row: dict) -> dict[str, float]:
    """A diagnostics.jsonl row as ``diagnostics/<layer>/<statistic>`` tags (numbers only)."""
    out = {}
    for layer, stats in (row.get("layers") or {}).items():
        for key, value in stats.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"diagnostics/{layer}/{key}"] = float(value)
    return out


class TensorBoardLogger(Callback):
    """Writes each epoch's logs (and the diagnostics callback's row, when given) as scalars.

    ``resume_epoch``: the epoch of the checkpoint a resumed run starts from; records after
    it are dropped first, and the epochs up to it that the files lack are written from
    ``history`` (the rows of metrics.jsonl kept) and the run's diagnostics.jsonl."""

    def __init__(self, run_dir, diagnostics=None, resume_epoch: int | None = None,
                 history=()):
        self.run_dir = pathlib.Path(run_dir)
        self.root = self.run_dir / "tensorboard"
        self.diagnostics = diagnostics
        self.resume_epoch = resume_epoch
        self.history = list(history)
        self.train = self.validation = None

    def _earlier_epochs(self) -> tuple[dict, dict]:
        """(train, validation): step -> scalars of the epochs up to ``resume_epoch``."""
        import json
        train, validation = {}, {}
        for row in self.history:
            epoch = row.get("epoch")
            if isinstance(epoch, int) and 0 < epoch <= self.resume_epoch:
                train[epoch], validation[epoch] = split_logs(row)
        path = self.run_dir / "diagnostics.jsonl"
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except ValueError:  # a line cut short by a crash
                    continue
                epoch = row.get("epoch") if isinstance(row, dict) else None
                if epoch in train:
                    train[epoch].update(diagnostics_tags(row))
        return train, validation

    def on_train_begin(self, trainer):
        from dlcli.errors import TrainingError
        try:
            if self.resume_epoch is not None:
                earlier = dict(zip(("train", "validation"), self._earlier_epochs()))
                for name in ("train", "validation"):
                    if (self.root / name).is_dir():
                        truncate(self.root / name, self.resume_epoch)
                    if any(earlier[name].values()):
                        backfill(self.root / name, earlier[name])
            self.train = EventWriter(self.root / "train")
            self.validation = EventWriter(self.root / "validation")
        except OSError as exc:
            raise TrainingError(f"cannot write {self.root}: {exc.strerror or exc}") from None

    def on_epoch_end(self, trainer, epoch, logs):
        from dlcli.errors import TrainingError
        train, validation = split_logs(logs)
        rows = getattr(self.diagnostics, "rows", None)
        if rows and rows[-1].get("epoch") == epoch:
            train.update(diagnostics_tags(rows[-1]))
        now = time.time()
        try:
            self.train.scalars(epoch, train, now)
            self.validation.scalars(epoch, validation, now)
        except OSError as exc:
            raise TrainingError(f"cannot write {self.root}: {exc.strerror or exc}; the last "
                                "good checkpoint is checkpoints/last.npz") from None
