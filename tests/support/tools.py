"""Tools some tests run that are not Python packages: found where they are installed."""

from __future__ import annotations

import glob
import os
import shutil


def python312() -> str | None:
    """A Python 3.12 (the FinOps FOCUS validator needs it): on PATH, or a pyenv version,
    looked for as the Makefile looks for it."""
    found = shutil.which("python3.12")
    if found:
        return found
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    versions = sorted(glob.glob(os.path.join(root, "versions", "3.12*", "bin", "python3.12")))
    return versions[-1] if versions else None


def promtool() -> str | None:
    """Prometheus's promtool (Debian's prometheus package; make test installs it)."""
    return shutil.which("promtool")
