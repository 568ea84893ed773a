"""``dlcli export --format safetensors``: the weights, written without any dependency.

The format (https://huggingface.co/docs/safetensors): an 8-byte little-endian unsigned
header length ``n``, ``n`` bytes of JSON header, then the tensors' raw little-endian bytes
back to back. The header maps each tensor's name to ``{"dtype", "shape", "data_offsets":
[begin, end]}`` (offsets into the byte buffer after the header) and may hold a
``__metadata__`` mapping of strings to strings.

Tensors carry their checkpoint names and layouts (``dense1.weight`` (out, in),
``conv1.weight`` (out, in, kh, kw), ``deconv.weight`` (in, out, kh, kw): PyTorch's), so
they load with ``load_state_dict(strict=True)`` into the PyTorch module whose submodules
bear the layer names. ``__metadata__`` holds ``format: pt``, the normalizer (kind, shift,
scale as JSON), the class names, the input shape (height, width, channels) and the task.
"""

from __future__ import annotations

import json
import struct

import numpy as np

DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64",
          np.dtype(np.float16): "F16", np.dtype(np.int64): "I64", np.dtype(np.int32): "I32"}
ALIGN = 8  # pad the header with spaces so the tensor bytes start 8-byte aligned


def encode(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """The safetensors bytes of ``tensors`` (name -> array) with string ``metadata``."""
    header: dict = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}}
    blobs, offset = [], 0
    for name, array in tensors.items():
        array = np.asarray(array)
        little = array.astype(array.dtype.newbyteorder("<"), copy=False)
        blob = np.ascontiguousarray(little).tobytes()
        header[name] = {"dtype": DTYPES[np.dtype(array.dtype.name)],
                        "shape": [int(d) for d in array.shape],
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % ALIGN)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def decode(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The inverse of :func:`encode`: (tensors, metadata)."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    metadata = header.pop("__metadata__", {}) or {}
    by_code = {code: dtype for dtype, code in DTYPES.items()}
    body = memoryview(data)[8 + n:]
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dtype = by_code[info["dtype"]].newbyteorder("<")
        tensors[name] = np.frombuffer(body[begin:end], dtype=dtype).reshape(info["shape"]).copy()
    return tensors, metadata


def metadata_for(run, extra: dict) -> dict[str, str]:
    """``__metadata__`` of a run: strings only, structured values as JSON."""
    normalizer = run.normalizer
    meta = {"format": "pt",
            "normalizer": json.dumps({"kind": normalizer.kind,
                                      "shift": np.asarray(normalizer.shift).tolist(),
                                      "scale": np.asarray(normalizer.scale).tolist()})}
    for key, value in extra.items():
        meta[key] = value if isinstance(value, str) else json.dumps(value)
    return meta


def write(run, path, extra: dict) -> None:
    """Write the run's model weights to ``path`` atomically."""
    from dlcli.train.io import atomic_writer
    data = encode(run.model.state_dict(), metadata_for(run, extra))
    with atomic_writer(path) as handle:
        handle.write(data)
