"""The README's first screen, as written: the shell commands of its "Quick start" section
run one after another in a fresh virtual environment (``tests.helpers.cli``: the ``dlcli``
of a ``pip install .``, or a venv made for this test) inside a copy of the repository's
data and configs. ``pip install`` lines are what made that environment; the test suite's
own command is not run again from inside it."""

import os
import pathlib
import re
import shutil
import subprocess

import pytest

from tests.helpers.cli import installed_dlcli

REPO = pathlib.Path(__file__).resolve().parents[1]


def quick_start_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Quick start\n(.*?)^## ", text, re.S | re.M)
    assert section, "README.md has no '## Quick start' section"
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section.group(1), re.S):
        for line in block.splitlines():
            line = line.strip()
            if line and not line.startswith("#") and not line.startswith("pip install"):
                commands.append(line)
    return commands


def test_the_quick_start_names_init_train_eval_on_a_csv():
    commands = quick_start_commands()
    verbs = [c.split()[1] for c in commands if c.startswith("dlcli ")]
    assert verbs[:3] == ["init", "train", "eval"], commands
    assert ".csv" in commands[0]


@pytest.mark.slow
def test_the_quick_start_runs_as_written(tmp_path):
    exe = installed_dlcli(tmp_path / "install")
    work = tmp_path / "checkout"
    for folder in ("datasets", "configs"):
        shutil.copytree(REPO / folder, work / folder)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({"PATH": f"{exe.parent}{os.pathsep}{env.get('PATH', '')}", "NO_COLOR": "1",
                "COLUMNS": "100"})
    commands = quick_start_commands()
    assert commands
    for command in commands:
        done = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr
