"""Throwaway key pairs on disk, made once per session: the STS's, a second trusted one and one nobody trusts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wstrust_wsgi import SigningKey, generate_demo_key_pair

#: The key pairs :func:`make_key_pairs` writes: ``sts`` signs, ``sts2`` is for rollover, ``rogue`` is trusted by nobody.
KEY_STEMS = ("sts", "rogue", "sts2")


@dataclass(frozen=True)
class KeyFiles:
    """A PEM private key and its self-signed certificate, as files (what the CLI and the config take)."""

    key: Path
    cert: Path

    def load(self) -> SigningKey:
        return SigningKey.from_files(self.key, self.cert)


def make_key_pairs(directory: Path) -> Path:
    """Write every pair of :data:`KEY_STEMS` into ``directory`` and return it."""
    for stem in KEY_STEMS:
        generate_demo_key_pair(f"test {stem}", directory, stem)
    return directory


def key_files(directory: Path, stem: str) -> KeyFiles:
    """The pair ``stem`` that :func:`make_key_pairs` wrote into ``directory``."""
    return KeyFiles(directory / f"{stem}.key", directory / f"{stem}.crt")
