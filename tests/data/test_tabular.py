"""CSV columns as users have them (dlcli/data/tabular.py): feature selection by names and
globs, one-hot encoded text columns, empty cells, id-like columns. Expectations are written
out by hand from the file's cells."""

import numpy as np
import pytest

from dlcli.data.prepare import prepare
from dlcli.data.tabular import Table, fill_missing, read_table
from dlcli.errors import DataError


def write(path, text):
    path.write_text(text)
    return path


def spec(source, **extra):
    return {"source": str(source), "target": "y", "test_split": 0.0, "validation_split": 0.0,
            "normalize": "none", **extra}


def test_features_and_exclude_take_names_and_globs(tmp_path):
    path = write(tmp_path / "t.csv", "Id,sepal_a,sepal_b,petal_a,petal_b,y\n"
                 + "".join(f"{i},{i}.1,{i}.2,{i}.3,{i}.4,{i % 2}\n" for i in range(1, 6)))
    got = read_table(path, "y", features=["petal_*", "sepal_a"])
    assert got["feature_names"] == ["petal_a", "petal_b", "sepal_a"]
    assert got["x"][0].tolist() == [1.3, 1.4, 1.1]
    got = read_table(path, "y", exclude=["Id", "sepal_*"])
    assert got["feature_names"] == ["petal_a", "petal_b"]
    with pytest.raises(DataError, match=r"data.exclude: 'Idx' matches no column"):
        read_table(path, "y", exclude=["Idx"])
    with pytest.raises(DataError, match="also the target"):
        read_table(path, "y", features=["y", "Id"])


def test_text_columns_are_one_hot_encoded_in_sorted_category_order(tmp_path):
    path = write(tmp_path / "t.csv", "size,colour,y\n1,red,0\n2,blue,1\n3,green,0\n4,red,1\n")
    got = read_table(path, "y")
    table = got["table"]
    assert table.categories == {"colour": ["blue", "green", "red"]}
    assert table.feature_names == ["size", "colour=blue", "colour=green", "colour=red"]
    assert got["x"].tolist() == [[1, 0, 0, 1], [2, 1, 0, 0], [3, 0, 1, 0], [4, 0, 0, 1]]
    # a trained run's table reads new rows with the same columns, in its order
    other = write(tmp_path / "o.csv", "colour,size,extra\ngreen,7,x\n")
    x = read_table(other, None, table=table, targets=False)["x"]
    assert x.tolist() == [[7, 0, 1, 0]]
    unseen = write(tmp_path / "u.csv", "colour,size\ngreen,7\npurple,8\n")
    with pytest.raises(DataError) as info:
        read_table(unseen, None, table=table, targets=False)
    message = str(info.value)
    assert "u.csv: row 3" in message and "'colour'" in message and "'purple'" in message
    assert "blue, green, red" in message


def test_a_number_column_with_one_text_cell_is_refused_not_encoded(tmp_path):
    rows = "".join(f"{i},{i % 2}\n" for i in range(30))
    path = write(tmp_path / "t.csv", "age,y\n" + rows + "3O,1\n")
    with pytest.raises(DataError, match=r"t.csv: row 32: feature column 'age' holds numbers "
                                         r"but this cell is '3O'"):
        read_table(path, "y")


def test_a_text_column_of_identifiers_is_refused_unless_named(tmp_path):
    rows = "".join(f"{i},name{i},{i % 2}\n" for i in range(40))
    path = write(tmp_path / "t.csv", "v,Name,y\n" + rows)
    with pytest.raises(DataError, match=r"text column 'Name' has 40 distinct values in 40 rows"
                                         r".*data.exclude"):
        read_table(path, "y")
    assert read_table(path, "y", exclude="Name")["feature_names"] == ["v"]
    assert read_table(path, "y", features=["v", "Name"])["x"].shape == (40, 41)


def test_id_like_column_warns(tmp_path):
    rows = "".join(f"{i},{(i * 7) % 5}.5,{i % 3}\n" for i in range(1, 21))
    path = write(tmp_path / "t.csv", "Id,v,y\n" + rows)
    warnings = read_table(path, "y")["warnings"]
    assert len(warnings) == 1 and "'Id'" in warnings[0] and "data.exclude" in warnings[0]
    assert read_table(path, "y", exclude=["Id"])["warnings"] == []
    assert read_table(path, "y", features=["Id", "v"])["warnings"] == []  # named: wanted


@pytest.mark.parametrize("name, flagged", [("Id", True), ("ID", True), ("Unnamed: 0", True),
                                           ("PassengerId", True), ("user_id", True),
                                           ("index", True), ("Paid", False),
                                           ("count", False), ("idea", False)])
def test_a_shuffled_id_column_is_known_by_its_name(tmp_path, name, flagged):
    """Unique integers in shuffled order (Kaggle's Iris after a shuffle, a pandas index)
    are a row id when the column is named like one; other unique integers are features."""
    order = [7, 3, 15, 1, 12, 9, 20, 5, 18, 2, 11, 16, 4, 19, 8, 14, 6, 10, 17, 13]
    rows = "".join(f"{i},{(i * 7) % 5}.5,{i % 3}\n" for i in order)
    path = write(tmp_path / "t.csv", f'"{name}",v,y\n' + rows)
    warnings = read_table(path, "y")["warnings"]
    assert len(warnings) == int(flagged)
    if flagged:
        assert f"{name!r}" in warnings[0] and "named like an id" in warnings[0]
        assert "data.exclude" in warnings[0]
    repeated = write(tmp_path / "r.csv", f'"{name}",v,y\n' + rows.replace("7,", "3,", 1))
    assert read_table(repeated, "y")["warnings"] == []  # a value twice: not an id


def test_empty_cells_are_refused_by_default_with_row_and_column(tmp_path):
    path = write(tmp_path / "t.csv", "a,b,y\n1,2,0\n3,,1\n5,6,0\n")
    with pytest.raises(DataError) as info:
        read_table(path, "y")
    message = str(info.value)
    assert "t.csv: row 3" in message and "'b'" in message
    assert "data.missing" in message and "mean" in message and "drop" in message


def test_missing_drop_skips_rows_and_says_so(tmp_path):
    path = write(tmp_path / "t.csv", "a,b,y\n1,2,0\n3,NA,1\n5,6,0\n7,8,\n")
    got = read_table(path, "y", missing="drop")
    assert got["x"].tolist() == [[1, 2], [5, 6]]
    assert got["y"].tolist() == [0, 0] and got["lines"] == [2, 4]
    assert any("dropped 1 of 3 rows" in w for w in got["warnings"])


def test_missing_mean_fills_with_the_training_split_mean(tmp_path):
    from dlcli.data.prepare import SPLIT_STREAM, stream_rng

    a = [1.0, 2.0, None, 4.0, 8.0, 16.0]
    path = write(tmp_path / "t.csv", "a,y\n" + "".join(
        f"{'' if v is None else v},{i % 2}\n" for i, v in enumerate(a)))
    s = prepare(spec(path, missing="mean", test_split=0.5), tmp_path, 0)
    train = sorted(stream_rng(0, SPLIT_STREAM).permutation(6)[3:])  # prepare's split
    present = [a[i] for i in train if a[i] is not None]
    assert s.table.fill == pytest.approx([sum(present) / len(present)])
    assert np.isfinite(s.x_train).all() and np.isfinite(s.x_test).all()


def test_missing_mean_by_hand(tmp_path):
    path = write(tmp_path / "t.csv", "a,c,y\n1,u,0\n2,v,1\n,u,0\n4,,1\n")
    s = prepare(spec(path, missing="mean"), tmp_path, 0)  # every row trains
    assert s.table.fill == pytest.approx([(1 + 2 + 4) / 3, 2 / 3, 1 / 3])
    assert s.x_train[2].tolist() == pytest.approx([7 / 3, 1, 0])
    assert s.x_train[3].tolist() == pytest.approx([4, 2 / 3, 1 / 3])
    # at predict time the stored fill is used, not the new file's means
    new = write(tmp_path / "n.csv", "a,c\n,v\n100,u\n")
    x = read_table(new, None, table=s.table, targets=False)["x"]
    fill_missing(x, s.table)
    np.testing.assert_allclose(x, [[7 / 3, 0, 1], [100, 1, 0]])


def test_table_state_round_trips():
    table = Table(["a", "c"], {"c": ["u", "v"]}, "mean", [1.5, 0.25, 0.75])
    again = Table.from_state(table.state())
    assert again.state() == table.state()
    assert again.feature_names == ["a", "c=u", "c=v"]


@pytest.mark.parametrize("key, value", [("target", "y"), ("features", ["a"]), ("exclude", "Id"),
                                        ("missing", "mean")])
def test_csv_keys_on_arrays_are_refused_not_ignored(tmp_path, key, value):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 2)), y=np.array([0, 1, 0, 1]))
    with pytest.raises(DataError, match=rf"data.{key} applies to the columns of a CSV file"):
        prepare({**spec(tmp_path / "d.npz"), "target": None, key: value}, tmp_path, 0)
