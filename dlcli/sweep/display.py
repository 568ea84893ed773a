"""What a sweep shows: a live table on a terminal, one line per ended trial otherwise, and
``dlcli sweep --show`` (trials sorted by the metric, with their parameter values)."""

import json

from dlcli.sweep import record


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value)


def _params_text(params: dict | None) -> str:
    return " ".join(f"{k}={fmt(v)}" for k, v in (params or {}).items())


class SweepDisplay:
    """Told of every started and ended trial by the driver; draws for people."""

    def __init__(self, console, spec, total: int, interactive: bool, sweep_dir):
        self.console, self.spec, self.total = console, spec, total
        self.interactive, self.dir = interactive, sweep_dir
        self.rows: dict[int, dict] = {}
        self.best = None
        self.live = None
        if interactive:
            from rich.live import Live
            self.live = Live(self._table(), console=console, auto_refresh=False,
                             transient=False)
            self.live.start()

    def _counts(self) -> dict:
        counts = {"running": 0, "finished": 0, "failed": 0, "other": 0}
        for row in self.rows.values():
            key = row.get("status")
            counts[key if key in counts else "other"] += 1
        return counts

    def _table(self):
        from rich.table import Table
        metric = self.spec["metric"]["name"]
        c = self._counts()
        best = (f"best {metric} {fmt(self.best['value'])} (trial {record.trial_name(self.best['trial'])})"
                if self.best else "no result yet")
        table = Table(title=f"sweep {self.spec['name']}: {c['running']} running, "
                            f"{c['finished']} done, {c['failed']} failed of {self.total}; "
                            f"{best}", title_justify="left")
        table.add_column("trial", justify="right")
        table.add_column("status")
        for key in self.spec["parameters"]:
            table.add_column(key, justify="right")
        table.add_column(metric, justify="right")
        shown = sorted(self.rows)
        running = [n for n in shown if self.rows[n].get("status") == "running"]
        recent = [n for n in shown if n not in running][-max(5, 20 - len(running)):]
        for number in sorted(running + recent):
            row = self.rows[number]
            mark = " *" if self.best and self.best["trial"] == number else ""
            status = row.get("status", "")
            if status == "running" and row.get("resumed"):
                status = "running (resumed)"
            table.add_row(record.trial_name(number), status,
                          *(fmt((row.get("params") or {}).get(k))
                            for k in self.spec["parameters"]),
                          fmt(row.get("metric")) + mark)
        return table

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(self._table(), refresh=True)

    def started(self, number: int, row: dict) -> None:
        self.rows[number] = row
        self.refresh()

    def ended(self, number: int, row: dict, best: dict | None) -> None:
        self.rows[number] = row
        self.best = best
        if self.live is not None:
            self.refresh()
            return
        metric = self.spec["metric"]["name"]
        done = sum(1 for r in self.rows.values() if r.get("status") in record.FINAL)
        status = row["status"]
        if status == "finished":
            what = f"finished  {metric} {fmt(row.get('metric'))}"
        elif status == "failed":
            what = f"failed (exit {row.get('exit_code')}; see logs/{record.trial_name(number)}.log)"
        elif status == "crashed":
            what = f"crashed (exit {row.get('exit_code')}); continued from its last checkpoint"
        else:
            what = status
        best_text = (f"  best {fmt(best['value'])} (trial {record.trial_name(best['trial'])})" if best else "")
        self.console.print(f"trial {record.trial_name(number)} {what}{best_text}  "
                           f"[{done}/{self.total}]  {_params_text(row.get('params'))}",
                           markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def print_dry_run(console, spec, trials, sweep_total: int) -> None:
    from rich.table import Table

    from dlcli.use.report import print_table
    if spec["method"] == "tpe":
        console.print(f"tpe: {sweep_total} trials whose values Optuna chooses as trials "
                      f"finish; every value and both ends of every range checked:",
                      markup=False)
    table = Table(title=f"sweep {spec['name']}: {len(trials) if trials else sweep_total} "
                        f"trials ({spec['method']}, seed {spec['seed']})", title_justify="left")
    table.add_column("trial", justify="right")
    for key in spec["parameters"]:
        table.add_column(key, justify="right")
    for number, values in trials:
        table.add_row(record.trial_name(number), *(fmt(values[k]) for k in spec["parameters"]))
    print_table(console, table)


def show_rows(sweep_dir, spec) -> list[dict]:
    latest, _ = record.read(sweep_dir)
    return record.ranked(latest, spec["metric"]["goal"])


def print_show(console, spec, rows: list[dict], total: int) -> None:
    from rich.table import Table

    from dlcli.use.report import print_table
    metric = spec["metric"]["name"]
    table = Table(title=f"sweep {spec['name']}: {metric} ({spec['metric']['goal']}), "
                        f"{sum(r.get('status') == 'finished' for r in rows)} of {total} "
                        f"trials finished", title_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("trial", justify="right")
    table.add_column("status")
    table.add_column(metric, justify="right")
    table.add_column("epoch", justify="right")
    for key in spec["parameters"]:
        table.add_column(key, justify="right")
    for rank, row in enumerate(rows, 1):
        table.add_row(str(rank) if row.get("metric") is not None else "-",
                      record.trial_name(row["trial"]), row.get("status", ""),
                      fmt(row.get("metric")), fmt(row.get("best_epoch")),
                      *(fmt((row.get("params") or {}).get(k)) for k in spec["parameters"]))
    print_table(console, table)
