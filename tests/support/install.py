"""orgproxy built and installed as a user gets it, quickly and offline, for the tests of the
package and of an install run by a service user.

- ``built`` (a session fixture): ``python -m build`` run once for the whole session (every
  xdist worker shares it, under a lock) on a copy of the tree, giving the sdist and the wheel.
- ``fresh_venv(wheel, directory)``: a venv of the system's Python (as ``make install`` makes
  it: outside any home directory), the wheel installed into it by pip with ``--no-deps``, and
  its runtime dependencies put in from this test venv's installed distributions (each one's
  RECORD: the files pip installed, hard-linked where the filesystem allows, else copied; with
  console scripts written for the new venv), as a wheel cache would give them, without the
  network. A linked file is this venv's too: make the new venv read-only by its directories
  (nothing in them can then be made, replaced or removed), never by its files.
- ``as_service_user()``: what a child process calls to run as ``nobody`` when the tests run
  as root (root writes into read-only directories; a service user does not).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import Distribution, distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
# The system's Python, as the Makefile's install picks it (the first that is 3.11 or newer).
SYSTEM_PYTHONS = ("/usr/bin/python3.11", "/usr/bin/python3", "/usr/local/bin/python3.11", "/usr/local/bin/python3")
NOBODY = 65534
# The Makefile's command that builds Twisted's plugin cache (its PLUGIN_CACHE), as README.md shows it.
PLUGIN_CACHE = "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"
# What a copy of the tree for the build leaves out: what is not the project's.
NOT_THE_PROJECT = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis",
                                         "var", "*.pid", "twistd.log*", "orgproxy-client-token")


@dataclass(frozen=True)
class Built:
    sdist: Path
    wheel: Path


def system_python() -> str:
    for candidate in SYSTEM_PYTHONS:
        found = subprocess.run([candidate, "-c", "import sys; sys.exit(sys.version_info < (3, 11))"],
                               capture_output=True, check=False) if os.path.exists(candidate) else None
        if found is not None and found.returncode == 0:
            return candidate
    raise AssertionError(f"no system Python 3.11 or newer among {', '.join(SYSTEM_PYTHONS)}"
                         " (on Debian: apt-get install python3 python3-venv)")


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Built:
    """The sdist and the wheel ``python -m build`` makes, made once per session."""
    # Every xdist worker's temporary directory is under one root: the build is made there once.
    shared = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    dist = shared / "dist"
    with open(shared / "dist.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (dist / "built").exists():
            tree = shared / "tree"
            shutil.rmtree(tree, ignore_errors=True)
            shutil.copytree(ROOT, tree, ignore=NOT_THE_PROJECT)
            # No isolation: the build backend (setuptools, from the test extra) is this venv's,
            # rather than one downloaded into a new environment on every run.
            done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(tree)],
                                  capture_output=True, text=True, timeout=300, check=False)
            assert done.returncode == 0, done.stdout + done.stderr
            (dist / "built").touch()
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")
    return Built(sdist, wheel)


def planned_install(*args: str) -> list[str]:
    """The commands ``make install`` runs (-n: printed, not run), one per line."""
    planned = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "-n", "install", *args],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    return [line for line in planned.replace("\\\n", " ").splitlines() if line.startswith("umask 022 && ")]


def runtime_distributions(name: str = "orgproxy") -> list[Distribution]:
    """Every distribution ``name`` needs to run, as installed here (its extras' too)."""
    wanted: dict[str, set[str]] = {}
    queue: list[tuple[str, set[str]]] = [(name, set())]
    found: dict[str, Distribution] = {}
    while queue:
        project, extras = queue.pop()
        key = canonicalize_name(project)
        if key in found and extras <= wanted[key]:
            continue
        wanted.setdefault(key, set()).update(extras)
        found[key] = installed = distribution(project)
        for text in installed.requires or ():
            requirement = Requirement(text)
            if requirement.marker is None or any(requirement.marker.evaluate({"extra": extra})
                                                 for extra in wanted[key] | {""}):
                queue.append((requirement.name, set(requirement.extras)))
    return [found[key] for key in found if key != canonicalize_name(name)]


def fresh_venv(wheel: Path, venv: Path) -> Path:
    """A new venv of the system's Python at ``venv`` with ``wheel`` installed: its bin/."""
    subprocess.run([system_python(), "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    site_packages = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        capture_output=True, text=True, check=True, timeout=60).stdout.strip())
    for installed in runtime_distributions():
        copy_distribution(installed, site_packages, venv / "bin")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet",
                           str(wheel)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return venv / "bin"


def copy_distribution(installed: Distribution, site_packages: Path, scripts: Path) -> None:
    """What pip installed of ``installed`` (its RECORD) into ``site_packages``, linked or
    copied; its console scripts written anew for the venv of ``scripts``, as pip writes them."""
    for file in installed.files or ():
        if file.parts[0] == "..":  # a script of this venv's, naming its Python
            continue
        target = site_packages / file
        target.parent.mkdir(parents=True, exist_ok=True)
        source = Path(str(installed.locate_file(file)))
        try:
            os.link(source, target)
        except OSError:  # another filesystem
            shutil.copy2(source, target)
    for entry in installed.entry_points.select(group="console_scripts"):
        module, _, attribute = entry.value.partition(":")
        script = scripts / entry.name
        script.write_text(f"#!{scripts / 'python'}\nimport sys\nfrom {module} import {attribute.split('.')[0]}\n"
                          f"sys.exit({attribute}())\n")
        script.chmod(0o755)


def as_service_user() -> Callable[[], None] | None:
    """For a child's ``preexec_fn``: run as ``nobody`` when the tests run as root, who could
    write where a service user cannot; None otherwise (the tests' own user is one then)."""
    if os.geteuid() != 0:
        return None

    def drop() -> None:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    return drop


@contextlib.contextmanager
def readable_directory(prefix: str) -> Iterator[Path]:
    """A new directory any user may enter (pytest's own are its user's alone), removed after."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        for path in (directory, *directory.rglob("*")):
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(directory)
