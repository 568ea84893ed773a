"""``method: tpe``: Optuna's Tree-structured Parzen Estimator through its ask/tell interface,
its study kept in ``<sweep>/optuna.journal`` (Optuna's journal file storage).

Trial n is asked with a sampler seeded from (seed, n): with the same results told before it,
trial n gets the same values, in a resumed sweep too. With ``parallel`` above 1 the results
told before an ask depend on which trials finish first, so only ``parallel: 1`` makes a tpe
sweep repeat exactly. A trial asked but never recorded (the driver died in between) is told
FAIL on resume and asked again: Optuna never keeps a dead trial RUNNING.
"""

import pathlib

import numpy as np

from dlcli.sweep import record

ATTR = "dlcli_trial"


def _distributions(parameters: dict) -> dict:
    from optuna.distributions import (CategoricalDistribution, FloatDistribution,
                                      IntDistribution)
    out = {}
    for key, dist in parameters.items():
        if "values" in dist:  # indexes: values may be lists or mappings, which Optuna refuses
            out[key] = CategoricalDistribution(list(range(len(dist["values"]))))
        elif "int" in dist:
            out[key] = IntDistribution(*dist["int"], log=dist.get("log", False))
        else:
            bounds = dist.get("uniform") or dist.get("loguniform")
            out[key] = FloatDistribution(*bounds, log="loguniform" in dist)
    return out


class TPE:
    def __init__(self, spec, sweep_dir, latest: dict[int, dict]):
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna, self.spec = optuna, spec
        path = pathlib.Path(sweep_dir) / "optuna.journal"
        storage = JournalStorage(JournalFileBackend(str(path)))
        self.study = optuna.create_study(
            study_name=spec["name"], storage=storage, load_if_exists=True,
            direction="maximize" if spec["metric"]["goal"] == "max" else "minimize")
        self.distributions = _distributions(spec.parameters)
        self.numbers: dict[int, int] = {}  # dlcli trial -> Optuna trial number
        running = self.optuna.trial.TrialState.RUNNING
        for trial in self.study.get_trials(deepcopy=False):
            number = trial.user_attrs.get(ATTR)
            if trial.state != running:
                continue
            row = latest.get(number)
            if row is None:
                self.study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
                continue
            self.numbers[number] = trial.number
            if row.get("status") in record.FINAL:  # recorded, then the driver died
                self.tell(number, row.get("metric") if row["status"] == "finished" else None)

    def ask(self, number: int) -> dict:
        trials = self.spec["trials"]
        seed = int(np.random.SeedSequence([self.spec["seed"], number]).generate_state(1)[0])
        self.study.sampler = self.optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=max(3, min(10, trials // 3)))
        trial = self.study.ask(self.distributions)
        trial.set_user_attr(ATTR, number)
        self.numbers[number] = trial.number
        out = {}
        for key, dist in self.spec.parameters.items():
            value = trial.params[key]
            out[key] = dist["values"][value] if "values" in dist else value
        return out

    def tell(self, number: int, value: float | None) -> None:
        if number not in self.numbers:
            return
        state = self.optuna.trial.TrialState
        if value is None:
            self.study.tell(self.numbers.pop(number), state=state.FAIL)
        else:
            self.study.tell(self.numbers.pop(number), value)
