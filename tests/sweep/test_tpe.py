"""method: tpe through Optuna's ask/tell: the same seed and results give the same trials,
and a resumed sweep (a new TPE on the same journal) asks what the first one would have."""

import pytest

pytest.importorskip("optuna")

from dlcli.sweep.spec import load_spec  # noqa: E402
from dlcli.sweep.tpe import TPE  # noqa: E402
from tests.helpers.sweep import dlcli, latest, write_sweep  # noqa: E402

SPEC = {"name": "t", "method": "tpe", "trials": 14, "seed": 3,
        "metric": {"name": "val_loss", "goal": "min"},
        "parameters": {"training.optimizer.lr": {"loguniform": [1.0e-4, 1.0]},
                       "model.layers[0].units": {"int": [2, 64], "log": True},
                       "training.optimizer.type": {"values": ["adam", "sgd"]}}}


def objective(values):
    """A made-up loss with its minimum near lr = 0.01, 16 units, adam."""
    import math
    return ((math.log10(values["training.optimizer.lr"]) + 2) ** 2
            + (math.log2(values["model.layers[0].units"]) - 4) ** 2 / 4
            + (values["training.optimizer.type"] == "sgd"))


def run(spec, sweep_dir, numbers, latest_rows=None, tpe=None):
    tpe = tpe or TPE(spec, sweep_dir, latest_rows or {})
    out = []
    for number in numbers:
        values = tpe.ask(number)
        tpe.tell(number, objective(values))
        out.append(values)
    return out


def rows_for(trials):
    return {n: {"trial": n, "status": "finished", "params": v, "metric": objective(v)}
            for n, v in enumerate(trials)}


def test_same_seed_same_trials_and_a_resumed_study_continues_them(tmp_path):
    spec = load_spec(write_sweep(tmp_path, SPEC))
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "c").mkdir()
    first = run(spec, tmp_path / "a", range(14))
    assert run(spec, tmp_path / "b", range(14)) == first
    # Later trials learn from earlier ones: TPE's picks are better than its random start.
    assert min(map(objective, first[7:])) < min(map(objective, first[:4]))

    # Resume: 8 trials told, a 9th asked but never recorded (the driver died), a new process.
    part = run(spec, tmp_path / "c", range(8))
    TPE(spec, tmp_path / "c", rows_for(part)).ask(8)
    rest = run(spec, tmp_path / "c", range(8, 14), rows_for(part))
    assert part + rest == first

    other = load_spec(write_sweep(tmp_path, {**SPEC, "seed": 4}, name="other.yaml"))
    (tmp_path / "d").mkdir()
    assert run(other, tmp_path / "d", range(14)) != first


@pytest.mark.slow
def test_a_tpe_sweep_end_to_end(tmp_path):
    spec = {**SPEC, "trials": 3, "set": {"training.epochs": 1},
            "executor": {"type": "local", "parallel": 1}}
    path = write_sweep(tmp_path, spec)
    dry = dlcli("sweep", path, "--dry-run", cwd=tmp_path, check=0)
    assert "tpe: 3 trials" in dry.stdout
    dlcli("sweep", path, "--dir", "out", cwd=tmp_path, check=0)
    rows = latest(tmp_path / "out")
    assert [rows[n]["status"] for n in range(3)] == ["finished"] * 3
    assert (tmp_path / "out" / "optuna.journal").is_file()
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    study = optuna.load_study(study_name="t", storage=JournalStorage(JournalFileBackend(
        str(tmp_path / "out" / "optuna.journal"))))
    told = {t.user_attrs["dlcli_trial"]: t.value for t in study.get_trials()}
    assert told == {n: rows[n]["metric"] for n in range(3)}
