"""bench/checkout.py: a before/after bench serves the other checkout's code, not this one's (the
editable install maps ``junction`` to this checkout whatever ``PYTHONPATH`` says)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _checkout_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_checkout", BENCH / "checkout.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _other_checkout(root: Path) -> Path:
    """A checkout laid out as ours (pyproject's package-dir), each package saying where it is."""
    root.mkdir()
    (root / "pyproject.toml").write_text('[tool.setuptools]\npackage-dir = { "junction" = "app", '
                                         '"junction.middleware" = "plugins/middleware" }\n')
    for folder in ("app", "plugins/middleware"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text(f"WHERE = {folder!r}\n")
    (root / "app" / "version.py").write_text("BEFORE = True\n")
    return root


def _imports(env: dict[str, str], first: str = "") -> str:
    """Where a new process (``first`` run before anything) finds ``junction``, a submodule, and
    ``junction.middleware``."""
    code = (first + "import junction, junction.version, junction.middleware; "
            "print(junction.WHERE, junction.version.BEFORE, junction.middleware.WHERE)")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                          timeout=60).stdout.strip()


def test_a_process_started_with_the_site_folder_imports_the_other_checkout(tmp_path: Path) -> None:
    root = _other_checkout(tmp_path / "before")
    site = _checkout_module().site_folder(root)
    assert _imports({"PYTHONPATH": str(site)}) == "app True plugins/middleware"


def test_install_maps_this_process_to_the_other_checkout(tmp_path: Path) -> None:
    root = _other_checkout(tmp_path / "before")
    first = (f"import sys; sys.path.insert(0, {str(BENCH)!r}); from pathlib import Path; import checkout; "
             f"checkout.install(Path({str(root)!r})); ")
    assert _imports({}, first) == "app True plugins/middleware"
