"""Where the files the tests read live: all inside the repository, under ``tests/data``.

The suite must pass from a clone alone, so third-party vectors are copied into
``tests/data/vectors`` (``tests/data/README.md`` names each file's source,
licence and the clock it is tested at) rather than read from a folder beside
the checkout. ``tests/test_self_contained.py`` keeps it that way.
"""

from __future__ import annotations

from pathlib import Path

#: The repository root (scripts, demo apps and ``bench/`` are found from here).
ROOT = Path(__file__).resolve().parent.parent.parent
#: Every data file the tests read.
DATA = ROOT / "tests" / "data"
#: Third-party messages and tokens, copied byte for byte.
VECTORS = DATA / "vectors"


def vector(name: str) -> Path:
    """The path of a copied vector, e.g. ``vector("clients/msal13.xml")``; a missing one is an error, never a skip."""
    path = VECTORS / name
    if not path.is_file():
        raise FileNotFoundError(f"{name} is not under {VECTORS}; see tests/data/README.md")
    return path
