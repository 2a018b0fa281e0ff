"""The one line ``--version`` prints, for the daemon and for ``orgproxy-report``."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version


def installed_version(package: str = "orgproxy") -> str:
    """The installed distribution's version (pyproject.toml's), or "unknown" from a bare tree."""
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def version_line(program: str, twisted: bool = False) -> str:
    """``orgproxy 0.1.0 (Twisted 26.10.0, Python 3.11.9)``; Twisted's only where it runs."""
    under = [f"Twisted {installed_version('twisted')}"] if twisted else []
    under.append(f"Python {platform.python_version()}")
    return f"{program} {installed_version()} ({', '.join(under)})"
