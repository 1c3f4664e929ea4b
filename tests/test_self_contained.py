"""The suite runs from a clone of the repository alone: every file a test reads is under tests/data.

The vectors were first read from a folder beside the checkout, which nobody who
clones the project has, and a third of the suite failed for them. These tests
keep that from coming back and keep ``tests/data`` what its README says it is.
"""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import pytest

from _support import DATA, ROOT, VECTORS, vector

TESTS = ROOT / "tests"
#: Ways of naming the folder outside the repository the vectors used to come from.
OUTSIDE = re.compile(r"\.\./shared|/shared/vectors")
#: The one file allowed to name it (it says where the copies came from), and this test, which must.
PROVENANCE = DATA / "README.md"
ALLOWED = {PROVENANCE, Path(__file__).resolve()}
#: Folders under tests/ that are installed, not part of the repository.
INSTALLED = {"node_modules", "__pycache__", ".hypothesis", ".pytest_cache"}


def _repository_files() -> list[Path]:
    return [
        path for path in sorted(TESTS.rglob("*"))
        if path.is_file() and not INSTALLED.intersection(path.relative_to(TESTS).parts)
    ]


def test_no_file_under_tests_reaches_outside_the_repository_for_data() -> None:
    offenders = []
    for path in _repository_files():
        if path.resolve() in ALLOWED:
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        offenders.extend(
            f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
            for number, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)
        )
    assert offenders == [], "read test data from tests/data (see tests/data/README.md):\n" + "\n".join(offenders)


def test_every_vector_is_named_in_the_data_readme() -> None:
    """A file nobody documented has no known source or licence."""
    readme = PROVENANCE.read_text(encoding="utf-8")
    names = [
        path.relative_to(VECTORS) for path in sorted(VECTORS.rglob("*"))
        if path.is_file() and path.name not in ("README.md", "MANIFEST.tsv")
    ]
    assert names, "no vectors under tests/data/vectors"
    missing = [str(name) for name in names if name.stem.removesuffix(".http") not in readme]
    assert missing == []


def _manifest() -> list[dict[str, str]]:
    with (VECTORS / "breadth" / "MANIFEST.tsv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.mark.parametrize("row", _manifest(), ids=lambda row: row["file"])
def test_breadth_vectors_are_the_bytes_their_manifest_names(row: dict[str, str]) -> None:
    data = vector(f"breadth/{row['file']}").read_bytes()
    assert len(data) == int(row["bytes"])
    assert hashlib.sha256(data).hexdigest() == row["sha256"]


def test_breadth_manifest_lists_every_breadth_vector() -> None:
    listed = {row["file"] for row in _manifest()}
    present = {path.name for path in (VECTORS / "breadth").iterdir() if path.name not in ("README.md", "MANIFEST.tsv")}
    assert listed == present


def test_a_missing_vector_is_an_error_not_a_skip() -> None:
    with pytest.raises(FileNotFoundError):
        vector("no-such-vector.xml")
