"""Run another checkout's Junction with this checkout's virtualenv.

This checkout is installed editable: ``junction`` (and ``junction.middleware``, ``junction.providers``,
…) map to its own folders, whatever ``PYTHONPATH`` says, so putting another checkout first on the
path still imports this one's code. :func:`install` maps those packages to ``root``'s folders
instead (read from its ``pyproject.toml``), ahead of the editable mapping; :func:`site_folder` makes a
folder whose ``sitecustomize`` does that in every Python process started with it on
``PYTHONPATH`` (a gateway's Granian workers too). The plugins' entry points stay this checkout's:
a plugin only ``root`` has is not found.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import tomllib
from importlib.machinery import ModuleSpec
from pathlib import Path


class CheckoutFinder:
    """Finds Junction's top-level packages in one checkout's folders."""

    def __init__(self, root: Path) -> None:
        setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
        self.folders = {name: root / folder for name, folder in setuptools["package-dir"].items()}

    def find_spec(self, name: str, path: object = None, target: object = None) -> ModuleSpec | None:
        folder = self.folders.get(name)
        if folder is None:
            return None  # a module inside one: found through its package's folder as usual
        return importlib.util.spec_from_file_location(name, folder / "__init__.py",
                                                      submodule_search_locations=[str(folder)])


def install(root: Path) -> None:
    """Import Junction from ``root`` in this process (call before anything imports it)."""
    sys.meta_path.insert(0, CheckoutFinder(root.resolve()))


def site_folder(root: Path) -> Path:
    """A new folder to put on ``PYTHONPATH``: Python processes started with it import Junction
    from ``root``."""
    folder = Path(tempfile.mkdtemp(prefix="junction-checkout-"))
    (folder / "sitecustomize.py").write_text(
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('junction_bench_checkout', {str(Path(__file__).resolve())!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        f"module.install(module.Path({str(root.resolve())!r}))\n")
    return folder
