"""Image layouts: which of NHW, NHWC or NCHW an input array is in, and its conversion to the
engine's internal (N, C, H, W) (feature vectors stay (N, F))."""

import numpy as np

from dlcli.errors import DataError

LAYOUTS = ("auto", "NHWC", "NCHW", "NHW")


def _to_internal(x, name: str, layout: str, where: str, synthetic: bool,
                 cast: bool = True) -> np.ndarray:
    """Inputs as float64 (with ``cast=False``: in their own numeric dtype, maybe a view):
    (N,) -> (N, 1); (N, F) kept; images -> (N, C, H, W)."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{name} must be numeric; got dtype {x.dtype}", where=where)
    if cast:
        x = x.astype(np.float64)
    if synthetic:
        layout = "NHWC" if x.ndim == 4 else "auto"
    resolved = detect_layout(x.shape, layout, name=name, where=where)
    if resolved == "vector":
        return x.reshape(x.shape[0], -1) if x.ndim == 2 else x.reshape(x.shape[0], 1)
    if resolved == "NHW":
        return x[:, None, :, :]
    if resolved == "NHWC":
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if cast else x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x)


def detect_layout(shape: tuple, layout: str = "auto", *, name: str = "x", where: str | None = None) -> str:
    """Resolve the layout of an array of ``shape``: 'vector', 'NHW', 'NHWC' or 'NCHW'.

    1-D and 2-D arrays are vectors. auto: 3-D is NHW; 4-D is NCHW if shape[1] in (1, 3)
    and shape[3] is not, NHWC if shape[3] in (1, 3) and shape[1] is not, otherwise
    ambiguous (DataError asking for data.layout). An explicit layout must fit the rank.
    """
    if layout not in LAYOUTS:
        raise DataError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}", where="data.layout")
    ndim = len(shape)
    if ndim == 0:
        raise DataError(f"{name} is a scalar; expected (samples, ...)", where=where)
    if ndim > 4:
        raise DataError(f"{name} has {ndim} dimensions {tuple(shape)}; at most 4 are supported", where=where)
    if ndim <= 2:
        if layout != "auto":
            raise DataError(
                f"data.layout is {layout} but {name} has shape {tuple(shape)} (feature vectors); "
                "use layout: auto", where=where,
            )
        return "vector"
    if ndim == 3:
        if layout not in ("auto", "NHW"):
            raise DataError(
                f"data.layout is {layout} but {name} has 3 dimensions {tuple(shape)}; "
                "3-D image arrays are NHW", where=where,
            )
        return "NHW"
    if layout == "NHW":
        raise DataError(f"data.layout is NHW but {name} has 4 dimensions {tuple(shape)}", where=where)
    if layout != "auto":
        return layout
    first, last = shape[1] in (1, 3), shape[3] in (1, 3)
    if first and not last:
        return "NCHW"
    if last and not first:
        return "NHWC"
    raise DataError(
        f"cannot tell whether {name} of shape {tuple(shape)} is NHWC or NCHW; "
        "set data.layout to NHWC or NCHW", where=where,
    )
