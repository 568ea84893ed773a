"""Tables on narrow terminals: a value is never cut ("1,234…"); when the table does not fit,
each row is printed as one line of ``header value`` pairs instead."""

import io

import pytest
from rich.console import Console

from dlcli.use.report import print_gradcheck, print_shapes, print_table

GRADCHECK = {"samples": 4, "loss": "binary_crossentropy", "tolerance": 1e-5, "passed": True,
             "params": [{"param": "dense1.weight", "shape": [8, 2], "checked": 16,
                         "max_abs_error": 1.05e-10, "relative_error": 2.39e-10, "passed": True},
                        {"param": "conv_transpose2d1.weight", "shape": [16, 8, 5, 5],
                         "checked": 3200, "max_abs_error": 3.5e-9, "relative_error": 4.2e-8,
                         "passed": False}]}

SHAPES = {"task": "classification", "loss": "categorical_crossentropy", "batch_size": 64,
          "dtype": "float32", "total_params": 123456789, "total_mult_adds": 987654321,
          "layers": [{"name": "input", "type": "input", "output_shape": [32, 32, 3],
                      "size": 3072, "params": 0, "mult_adds": 0, "activation": None},
                     {"name": "convolution_layer_one", "type": "conv2d",
                      "output_shape": [28, 28, 8], "size": 6272, "params": 123456789,
                      "mult_adds": 987654321, "activation": "relu"}],
          "memory_bytes": {"parameters": 1, "gradients": 1, "optimizer_state": 0,
                           "activations": 1, "workspaces": 0, "total": 3}, "warnings": []}


def _render(printer, report, width):
    buffer = io.StringIO()
    printer(Console(file=buffer, width=width, color_system=None), report)
    return buffer.getvalue()


@pytest.mark.parametrize("width", [40, 60, 80, 160])
def test_gradcheck_values_are_whole_at_any_width(width):
    out = _render(print_gradcheck, GRADCHECK, width)
    assert "…" not in out
    flat = " ".join(out.split())  # lines may wrap between values
    for value in ("dense1.weight", "conv_transpose2d1.weight", "1.05e-10", "2.39e-10",
                  "3.50e-09", "4.20e-08", "3200", "NO"):
        assert value in flat, (width, value)


def test_a_wide_console_gets_the_table_and_a_narrow_one_the_lines():
    wide = _render(print_gradcheck, GRADCHECK, 160)
    assert "┃" in wide and "dense1.weight:" not in wide
    narrow = _render(print_gradcheck, GRADCHECK, 40)
    assert "┃" not in narrow and "dense1.weight: shape (8, 2), checked 16" in narrow


@pytest.mark.parametrize("width", [50, 70, 200])
def test_shapes_numbers_are_whole(width):
    flat = " ".join(_render(print_shapes, SHAPES, width).split())
    assert "…" not in flat
    for value in ("123,456,789", "987,654,321", "convolution_layer_one", "6,272"):
        assert value in flat, (width, value)


def test_a_table_whose_cells_hold_an_ellipsis_is_not_mistaken_for_a_cut_one():
    from rich.table import Table
    table = Table()
    table.add_column("name")
    table.add_row("wait…")
    buffer = io.StringIO()
    print_table(Console(file=buffer, width=80, color_system=None), table)
    assert "┃" in buffer.getvalue() or "│" in buffer.getvalue()


def test_a_folded_number_makes_the_table_fall_back():
    # `dlcli compare` with eight runs on 80 columns: rich folds "0.47016" into "0.4" / "701"
    # / "6" without an ellipsis
    from rich.table import Table
    from rich.text import Text
    table = Table(title="comparing 8 runs")
    table.add_column("", no_wrap=True)
    for i in range(8):
        table.add_column(Text(f"lenet-20261125-0231{i:02d}"), justify="right", overflow="fold")
    table.add_row(Text("val_loss"), *[Text(f"0.4701{i}") for i in range(8)])
    buffer = io.StringIO()
    print_table(Console(file=buffer, width=80, color_system=None), table)
    out = buffer.getvalue()
    assert all(f"0.4701{i}" in out for i in range(8)), out


@pytest.mark.parametrize("width", [30, 45, 120])
def test_a_header_is_never_cut_either(width):
    # a column whose values are short but whose header is one long word: rich shortens the
    # header ("backward_milliseco…") before any value; then the lines are printed instead
    from rich.table import Table
    table = Table(title="timing")
    table.add_column("op")
    table.add_column("forward_milliseconds_per_step", justify="right")
    table.add_column("backward_milliseconds_per_step", justify="right")
    table.add_row("conv1", "2.35", "1.67")
    buffer = io.StringIO()
    print_table(Console(file=buffer, width=width, color_system=None), table)
    out = buffer.getvalue()
    assert "…" not in out
    flat = " ".join(out.split())
    for word in ("forward_milliseconds_per_step", "backward_milliseconds_per_step", "2.35"):
        assert word in flat, (width, word)
