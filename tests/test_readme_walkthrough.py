"""The README's commands, as written: every line of every ```bash block runs, one after
another in README order, with the installed ``dlcli`` (``tests.helpers.cli``: the ``dlcli``
of a ``pip install .``, or a venv made for this test) inside a copy of the repository's
data, configs and sweep specs.

What is not run, and why:

- ``pip install`` lines made the environment the test runs in (the ``[test]`` extra holds
  every optional package the README installs);
- ``python -m pytest`` lines are the test suite itself (``.ci/run`` runs the quick start's);
- ``python tests/golden/make_golden.py`` needs torch==2.13.0 and rewrites the golden files
  that ``tests/golden`` compares against (it is run by hand when they change);
- the ```python block (PyTorch loading the exported safetensors) is run, as written, by
  ``tests/use/test_readme_torch_snippet.py`` where torch is installed.

The quick start runs exactly as written. Elsewhere, every training command (``dlcli train``
or ``dlcli sweep`` of a shipped config or spec, under ``mpiexec`` too) gets
``--set training.epochs=2`` so the walk takes seconds, not the minutes the full configs
train for; the published figures are reproduced by ``tests/train/test_published_results.py``.
Commands written in prose with placeholders (``RUN``, ``CONFIG``) are syntax, not commands.
"""

import os
import pathlib
import re
import shutil
import subprocess

import pytest

from tests.helpers.cli import installed_dlcli
from tests.helpers.mpi import find_mpiexec

REPO = pathlib.Path(__file__).resolve().parents[1]
SHORT = "--set training.epochs=2"


def readme_blocks() -> list[tuple[str, list[str]]]:
    """(section title, command lines) for every ```bash block, comments removed."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = []
    for section in re.split(r"^(?=## )", text, flags=re.M):
        title = section.splitlines()[0].lstrip("# ") if section.startswith("## ") else ""
        for block in re.findall(r"```bash\n(.*?)```", section, re.S):
            lines = [re.sub(r"\s+#\s.*$", "", line).strip() for line in block.splitlines()]
            blocks.append((title, [line for line in lines if line and not line.startswith("#")]))
    return blocks


def quick_start_commands() -> list[str]:
    return [c for title, lines in readme_blocks() if title == "Quick start" for c in lines
            if not c.startswith("pip install")]


def walk_commands() -> list[tuple[str, str]]:
    """(section, command as run) for every README command the walk runs."""
    out = []
    for title, lines in readme_blocks():
        for command in lines:
            if (command.startswith("pip install") or "pytest" in command
                    or "make_golden.py" in command):
                continue
            trains = re.search(r"\bdlcli (train (configs|sweeps)/|sweep sweeps/)", command)
            if title != "Quick start" and trains and "--dry-run" not in command:
                command = f"{command} {SHORT}"
            out.append((title, command))
    return out


def test_the_quick_start_names_init_train_eval_on_a_csv():
    commands = quick_start_commands()
    verbs = [c.split()[1] for c in commands if c.startswith("dlcli ")]
    assert verbs[:3] == ["init", "train", "eval"], commands
    assert ".csv" in commands[0]


def test_the_walk_covers_every_block_of_the_readme():
    """Each ```bash block contributes a command to the walk, or holds only lines the module
    docstring explains (installs, the test suite, the golden generator)."""
    walked = {section for section, _ in walk_commands()}
    for title, lines in readme_blocks():
        runnable = [c for c in lines if not c.startswith("pip install") and "pytest" not in c
                    and "make_golden.py" not in c]
        assert not runnable or title in walked, (title, lines)
    sections = [title for title, _ in readme_blocks()]
    for needed in ("Quick start", "Looking at runs", "Taking a model out of dlcli", "Sweeps",
                   "Data-parallel training (MPI)"):
        assert needed in sections


@pytest.mark.slow
def test_every_readme_command_runs_as_written(tmp_path):
    commands = walk_commands()
    if any(c.startswith("mpiexec") for _, c in commands):
        pytest.importorskip("mpi4py")
        mpiexec = find_mpiexec()
        if mpiexec is None:
            pytest.skip("no mpiexec (pip install '.[mpi]')")
    if any("--format onnx" in c for _, c in commands):
        pytest.importorskip("onnx")
    if any(c.startswith("dlcli plot") for _, c in commands):
        pytest.importorskip("matplotlib")
    exe = installed_dlcli(tmp_path / "install")
    work = tmp_path / "checkout"
    for folder in ("datasets", "configs", "sweeps"):
        shutil.copytree(REPO / folder, work / folder)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    path = [str(exe.parent)]
    if any(c.startswith("mpiexec") for _, c in commands):
        path.append(str(pathlib.Path(mpiexec).parent))
    env.update({"PATH": os.pathsep.join(path + [env.get("PATH", "")]), "NO_COLOR": "1",
                "COLUMNS": "100", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
    assert commands
    for section, command in commands:
        done = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, (section, command, done.stdout[-2000:],
                                      done.stderr[-2000:])
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    # What the commands said they would write is there.
    for written in ("iris.yaml", "predictions.csv", "curves.png", "confusion.png", "sweep.png",
                    "runs/cnn_digits/export/model.onnx", "sweeps/lr/best.json"):
        assert (work / written).is_file(), written
