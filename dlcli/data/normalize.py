"""Input normalization fitted on the training split only: per-feature shift and scale,
computed in float64 over blocks of rows so a large integer array is never copied whole."""

import numpy as np

from dlcli.errors import DataError

BLOCK_ROWS = 4096  # rows converted to float64 at a time when normalizing
NORMALIZATIONS = ("standard", "minmax", "none")


class Normalizer:
    """Per-feature affine transform ``apply(x) = (x - shift) / scale``, fitted on training data.

    standard: shift = mean, scale = std; minmax: shift = min, scale = max - min (to [0, 1]);
    none: identity. A scale of 0 becomes 1. Vectors (N, F) get (F,) statistics; images
    (N, C, H, W) get per-channel (C, 1, 1) statistics (per-pixel statistics blow up pixels that
    are almost always 0 in training, such as digit borders).
    """

    def __init__(self, kind: str, shift: np.ndarray, scale: np.ndarray):
        if kind not in NORMALIZATIONS:
            raise DataError(f"unknown normalization {kind!r}; known: {', '.join(NORMALIZATIONS)}")
        self.kind = kind
        self.shift = np.asarray(shift, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)

    @classmethod
    def fit(cls, kind: str, x: np.ndarray, index=None) -> "Normalizer":
        """Fit on training inputs ``x[index]`` (all of x when index is None), N >= 1 rows.

        The statistics are float64, accumulated over blocks of rows converted one at a time,
        so x may keep its own dtype (uint8 images) and no full-size copy is made."""
        if kind not in NORMALIZATIONS:
            raise DataError(f"unknown normalization {kind!r}; known: {', '.join(NORMALIZATIONS)}")
        x = np.asarray(x)
        images = x.ndim == 4
        axes = (0, 2, 3) if images else (0,)
        if kind == "none":
            stat_shape = (x.shape[1], 1, 1) if images else x.shape[1:]
            return cls("none", np.zeros(stat_shape), np.ones(stat_shape))
        n = len(x) if index is None else len(index)
        if n == 0:
            raise DataError(f"cannot fit {kind} normalization on an empty training split")
        per_row = int(np.prod([x.shape[a] for a in axes if a != 0]))
        if kind == "standard":
            # two passes (mean, then squared deviations): as accurate as x.std, without
            # its full-size x - mean
            shift = sum(b.sum(axis=axes) for _, b in _float_blocks(x, index)) / (n * per_row)
            centre = shift.reshape(-1, 1, 1) if images else shift
            squares = sum(np.square(np.subtract(b, centre, out=b), out=b).sum(axis=axes)
                          for _, b in _float_blocks(x, index))
            scale = np.sqrt(squares / (n * per_row))
        else:
            blocks = [(b.min(axis=axes), b.max(axis=axes)) for _, b in _float_blocks(x, index)]
            shift = np.min([lo for lo, _ in blocks], axis=0)
            scale = np.max([hi for _, hi in blocks], axis=0) - shift
        if images:
            shift, scale = shift.reshape(-1, 1, 1), scale.reshape(-1, 1, 1)
        scale = np.where(scale > 0, scale, 1.0)
        return cls(kind, shift, scale)

    def transform(self, x: np.ndarray, index=None, dtype=np.float64) -> np.ndarray:
        """A new ``dtype`` array of ``apply(x[index])`` (all of x when index is None),
        computed in float64 over blocks of rows: the same values as ``apply(...)`` cast to
        dtype, without a full-size float64 intermediate. ``dtype=None`` keeps x's dtype
        (only with ``kind == "none"``: the rows copied as they are)."""
        n = len(x) if index is None else len(index)
        self._check_shape(x.shape[1:])
        if dtype is None:
            if self.kind != "none":
                raise ValueError("a normalized copy needs a floating dtype")
            return np.array(x, order="C") if index is None else np.take(x, index, axis=0)
        out = np.empty((n, *x.shape[1:]), dtype)
        for start, block in _float_blocks(x, index):
            if self.kind != "none":
                block -= self.shift
                block /= self.scale
            out[start:start + len(block)] = block
        return out

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(N, ...) -> float64 (N, ...) transformed; the feature shape must match the fit."""
        x = np.asarray(x, dtype=np.float64)
        self._check_shape(x.shape[1:])
        if self.kind == "none":
            return x.copy()
        return (x - self.shift) / self.scale

    def _check_shape(self, feature_shape) -> None:
        if len(feature_shape) != self.shift.ndim or any(
            s not in (1, f) for s, f in zip(self.shift.shape, feature_shape)
        ):
            raise DataError(
                f"inputs of shape {tuple(feature_shape)} per sample do not match the "
                f"normalizer fitted on statistics of shape {self.shift.shape}"
            )

    def invert(self, x: np.ndarray) -> np.ndarray:
        """The inverse of ``apply``: ``x * scale + shift`` (float64), e.g. to show a
        reconstruction in the units of the raw inputs."""
        x = np.asarray(x, dtype=np.float64)
        return x.copy() if self.kind == "none" else x * self.scale + self.shift

    def state(self) -> dict[str, np.ndarray]:
        """Plain arrays (savable with np.savez, loadable without pickle): kind, shift, scale."""
        return {"kind": np.array(self.kind), "shift": self.shift.copy(), "scale": self.scale.copy()}

    @classmethod
    def from_state(cls, state) -> "Normalizer":
        """Rebuild from ``state()`` (or an NpzFile holding its keys)."""
        try:
            kind = str(np.asarray(state["kind"]))
            return cls(kind, np.asarray(state["shift"]), np.asarray(state["scale"]))
        except KeyError as exc:
            raise DataError(f"normalizer state lacks {exc}") from None

    def __repr__(self) -> str:
        return f"Normalizer({self.kind!r}, statistics of shape {self.shift.shape})"


def _float_blocks(x: np.ndarray, index=None):
    """``(start, block)`` over the rows ``x[index]`` (all rows when index is None), each
    block a new float64 array of at most ``BLOCK_ROWS`` rows."""
    n, rows = (len(x) if index is None else len(index)), BLOCK_ROWS
    for start in range(0, n, rows):
        part = x[start:start + rows] if index is None else np.take(x, index[start:start + rows], axis=0)
        yield start, part.astype(np.float64)
