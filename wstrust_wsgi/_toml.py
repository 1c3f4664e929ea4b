"""Reading one TOML table of the deployment file: typed getters whose errors name the file, the table and the key.

:mod:`wstrust_wsgi.config` opens each table of the file as a :class:`Table`
and reads its values through these getters, so every mistake reads alike::

    /etc/wstrust/sts.toml: [ldap] pool_size: must be a whole number of at least 1, not 0

Values a rule of :mod:`wstrust_wsgi.model` checks (a role, a claim URI, a
URL) are passed through it, and its :class:`~wstrust_wsgi.errors.BadValue`
becomes the key's error. Unknown keys are refused when the table is opened.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .errors import BadValue, ConfigurationError

__all__ = ["Table", "kind", "suggest"]


class Table:
    """One TOML table: typed getters whose errors name the file, the table and the key.

    Unknown keys are refused when the table is opened, before any value is
    read, so a misspelt key is reported as such rather than as "missing".
    """

    def __init__(self, source: str, name: str, data: Mapping[str, Any] | None, known: tuple[str, ...]) -> None:
        self.source = source
        self.name = name
        self.present = data is not None
        self._data: Mapping[str, Any] = data or {}
        for key in self._data:
            if key not in known:
                raise self.error(key, f"unknown setting{suggest(key, known)}; "
                                      f"[{name}] takes {', '.join(known)}")

    @classmethod
    def of(cls, source: str, data: Mapping[str, Any], name: str, known: tuple[str, ...], *,
           required: str | None = None) -> Table:
        """The table ``name`` of the document ``data``; ``required``: why it may not be left out (None: it may)."""
        table = data.get(name)
        if table is None and required is not None:
            raise ConfigurationError(f"{source}: [{name}] is missing; {required}")
        return cls(source, name, table, known)

    @property
    def data(self) -> Mapping[str, Any]:
        """The table as read, for an owner that checks its own settings (``[lockout]``, ``[tokens]``)."""
        return self._data

    def error(self, key: str, problem: str) -> ConfigurationError:
        return ConfigurationError(f"{self.source}: [{self.name}] {key}: {problem}")

    def _value(self, key: str, required: bool) -> Any:
        value = self._data.get(key)
        if value is None and required:
            raise self.error(key, "missing; this setting is required")
        return value

    def text(self, key: str, *, default: str | None = None, check: Callable[[str], str] | None = None) -> str | None:
        value = self._value(key, False)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, not {kind(value, show='password' not in key)}")
        if not value.strip():
            raise self.error(key, "must not be empty")
        return self._checked(key, value.strip(), check)

    def _checked(self, key: str, value: str, check: Callable[[str], str] | None, where: str = "") -> str:
        try:  # check: a rule of wstrust_wsgi.model, whose BadValue becomes this key's error
            return check(value) if check is not None else value
        except BadValue as exc:
            raise self.error(key, f"{where}{exc}") from None

    def required_text(self, key: str) -> str:
        self._value(key, True)
        value = self.text(key)
        assert value is not None
        return value

    def texts(self, key: str, *, required: bool = False) -> tuple[str, ...]:
        """One string, or a non-empty list of them."""
        value = self._value(key, required)
        if value is None:
            return ()
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(isinstance(i, str) and i.strip() for i in items):
            raise self.error(key, f"must be a string or a list of non-empty strings, not {kind(value)}")
        return tuple(i.strip() for i in items)

    def choice(self, key: str, options: tuple[str, ...], *, default: str) -> str:
        value = self.text(key, default=default)
        if value is None or value not in options:
            raise self.error(key, f"{value!r} is not one of {', '.join(repr(o) for o in options)}")
        return value

    def flag(self, key: str) -> bool | None:
        value = self._value(key, False)
        if value is not None and not isinstance(value, bool):
            raise self.error(key, f"must be true or false, not {kind(value)}")
        return value

    def seconds(self, key: str) -> float | None:
        value = self._value(key, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, f"must be a number of seconds, not {kind(value)}")
        if not (math.isfinite(value) and value > 0):
            raise self.error(key, f"must be more than 0 seconds, not {value!r}")
        return float(value)

    def off_or_seconds(self, key: str, *, most: int) -> float | None:
        """A number of seconds from 0 (which turns the feature off) to ``most``."""
        value = self._value(key, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, f"must be a number of seconds (0 turns it off), not {kind(value)}")
        if not (math.isfinite(value) and 0 <= value <= most):
            raise self.error(key, f"must be from 0 (off) to {most} seconds, not {value!r}")
        return float(value)

    def whole_seconds(self, key: str) -> int | None:
        value = self._value(key, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be a whole number of seconds, not {kind(value)}")
        if value < 1:
            raise self.error(key, f"must be at least 1 second, not {value!r}")
        return value

    def count(self, key: str) -> int | None:
        value = self._value(key, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.error(key, f"must be a whole number of at least 1, not {value!r}")
        return value

    def path(self, key: str, base: Path) -> Path | None:
        """A file path; a relative one is relative to ``base`` (the TOML file's directory)."""
        value = self.text(key)
        return None if value is None else base / Path(value).expanduser()

    def required_path(self, key: str, base: Path) -> Path:
        return base / Path(self.required_text(key)).expanduser()

    def text_table(self, key: str, *, check: Callable[[str], str] | None = None) -> Mapping[str, str] | None:
        """A table of non-empty strings, each value passed to ``check`` (a rule of :mod:`wstrust_wsgi.model`)."""
        value = self._value(key, False)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.error(key, f"must be a table of strings (name = \"value\"), not {kind(value)}")
        for name, item in value.items():
            if not isinstance(item, str) or not item.strip():
                raise self.error(key, f"the value for {name!r} must be a non-empty string, not {kind(item)}")
            self._checked(key, item.strip(), check, f"the value for {name!r}: ")
        return MappingProxyType({name: item.strip() for name, item in value.items()})

    def read_file(self, key: str, path: Path) -> bytes:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise self.error(key, f"{path} cannot be read ({exc.strerror})") from None


def kind(value: object, *, show: bool = True) -> str:
    """A TOML-ish description of a value's type, for "must be X, not Y" (the value itself unless secret)."""
    kinds: list[tuple[type | tuple[type, ...], str]] = [(bool, "a boolean"), (int, "an integer"), (float, "a number"),
                                                         (str, "a string"), (list, "a list"), (dict, "a table")]
    for kind, text in kinds:
        if isinstance(value, kind):
            return f"{text} ({value!r})" if show and isinstance(value, (bool, int, float, str)) else text
    return "a date or time" if isinstance(value, datetime) else type(value).__name__


def suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""
