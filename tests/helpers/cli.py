"""Running the installed ``dlcli`` command in a subprocess.

``installed_dlcli(workdir)`` returns the path of a ``dlcli`` executable for this checkout:
the one on PATH when it belongs to the running interpreter's environment (a CI venv that
ran ``pip install .``), otherwise a fresh virtual environment under ``workdir`` into which
a copy of this repository is pip-installed offline (``--system-site-packages --no-deps
--no-build-isolation --no-index``: numpy, click, pyyaml and rich come from the system).
When pip cannot build the package offline (an old setuptools without ``wheel``), the
venv gets what an editable install makes instead: a ``.pth`` file naming the repository
and a console script generated from ``[project.scripts]`` of pyproject.toml.
"""

import importlib.metadata
import os
import pathlib
import shutil
import subprocess
import sys
import tomllib

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def _bin_dir(venv: pathlib.Path) -> pathlib.Path:
    return venv / ("Scripts" if os.name == "nt" else "bin")


def _entry_point() -> tuple[str, str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    module, _, func = project["scripts"]["dlcli"].partition(":")
    return module, func


def _shim_install(venv: pathlib.Path, python: pathlib.Path) -> pathlib.Path:
    query = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = subprocess.run([str(python), "-c", query], capture_output=True, text=True,
                          check=True).stdout.strip()
    pathlib.Path(site, "_dlcli_checkout.pth").write_text(str(REPO_ROOT) + "\n")
    module, func = _entry_point()
    script = _bin_dir(venv) / "dlcli"
    script.write_text(f"#!{python}\nimport sys\nfrom {module} import {func}\n"
                      f"sys.exit({func}())\n")
    script.chmod(0o755)
    return script


def _can_build_offline() -> bool:
    """pip builds a wheel with the visible setuptools: >= 70.1 has bdist_wheel built in,
    older ones need the ``wheel`` distribution. (Asked through metadata: importing
    setuptools puts its vendored packages on sys.path.)"""
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return False
    numbers = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if numbers >= (70, 1):
        return True
    try:
        importlib.metadata.version("wheel")
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def installed_dlcli(workdir: pathlib.Path) -> pathlib.Path:
    found = shutil.which("dlcli")
    here = pathlib.Path(sys.executable)
    if found and (pathlib.Path(found).parent == here.parent
                  or pathlib.Path(found).resolve().parent == here.resolve().parent):
        return pathlib.Path(found)
    venv = pathlib.Path(workdir) / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True, capture_output=True)
    python = _bin_dir(venv) / "python"
    script = _bin_dir(venv) / "dlcli"
    if not _can_build_offline():
        return _shim_install(venv, python)
    # Build from a copy: pip builds in the source tree and would leave build/ and
    # *.egg-info in the checkout.
    source = pathlib.Path(workdir) / "source"
    shutil.copytree(REPO_ROOT / "dlcli", source / "dlcli",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO_ROOT / name).is_file():
            shutil.copy2(REPO_ROOT / name, source / name)
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", "--no-build-isolation", "--no-index", "--disable-pip-version-check",
         str(source)],
        capture_output=True, text=True, env={**os.environ, "PIP_NO_INPUT": "1"})
    if pip.returncode != 0 or not script.exists():
        script = _shim_install(venv, python)
    return script


def run_dlcli(exe, *args, cwd=None, timeout=120) -> subprocess.CompletedProcess:
    """Run ``dlcli ARGS`` and capture text output; never raises on a non-zero exit."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update({"COLUMNS": "120", "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"})
    return subprocess.run([str(exe), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)
