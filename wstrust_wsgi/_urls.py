"""URLs as they may be shown: the one place a password in a store URL is hidden.

Registry, replay-cache and deployment messages all name URLs; each must show
the same redacted form, so they all call :func:`redact_url`.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """``url`` with any password (in the user part or a ``password=`` parameter) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            user, _, host = netloc.rpartition("@")
            netloc = f"{user.partition(':')[0]}:***@{host}"
        query = "&".join(
            f"{name}=***" if name.lower() == "password" else item
            for item in parts.query.split("&") if item
            for name in [item.partition("=")[0]]
        )
        if netloc == parts.netloc and query == parts.query:
            return url  # unchanged; urlunsplit would also turn sqlite:///p into sqlite:/p
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:
        return "<unreadable URL>"
