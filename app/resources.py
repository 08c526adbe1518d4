"""Files Junction ships beside its code — the Alembic migrations and the default ``granian.toml``
— found through :mod:`importlib.resources` relative to this package, so an installed wheel finds
its own copies wherever it runs from (never the working directory or a source checkout).

The migrations are the ``migrations`` subpackage of the top-level package (``migrations/`` in the
source tree, mapped by ``[tool.setuptools] package-dir``); a source tree that predates that mapping
falls back to the ``migrations/`` folder beside the package.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

#: The top-level import package: the one this module belongs to, whatever it is named.
_ROOT = __name__.rpartition(".")[0]
GRANIAN_FILE = "granian.toml"


def migrations_dir(chain: str | None = None) -> Path:
    """The Alembic script directory of the documents chain, or of ``chain`` (``"metrics"``)."""
    try:
        base = Path(str(files(f"{_ROOT}.migrations")))
    except ModuleNotFoundError:  # the source tree before the package-dir mapping
        base = Path(__file__).resolve().parent.parent / "migrations"
    return base / chain if chain else base


def default_granian_file() -> Path | None:
    """The ``granian.toml`` shipped in the package (a link to the top-level one in the source tree)."""
    shipped = files(_ROOT).joinpath(GRANIAN_FILE)
    return Path(str(shipped)) if shipped.is_file() else None


def alembic_config(chain: str | None = None, **attributes: Any) -> Any:
    """An Alembic config for a migrations chain, without an ini file (an installed package has
    none); ``attributes`` reach the chain's ``env.py``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir(chain)))
    config.set_main_option("path_separator", "os")
    config.attributes.update(attributes)
    return config
