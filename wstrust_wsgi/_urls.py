"""Store URLs: the one place a password in one is hidden, and the one reader of ``sqlite:///`` URLs.

Registry, replay-cache and deployment messages all name URLs; each must show
the same redacted form, so they all call :func:`redact_url`. The registry, the
replay cache, the deployment file and the command line all take
``sqlite:///abs/path.db``; each must find the same file, or refuse the same
URL for the same reason, so they all call :func:`sqlite_path`.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

from .errors import BadValue

_SQLITE_PREFIX = "sqlite:///"


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


def sqlite_path(url: str) -> str:
    """The absolute file path named by ``sqlite:///abs/path.db``.

    The rules (the strictest of those the registry, the replay cache, the
    deployment file and the command line applied before they shared this one):

    * ``sqlite:`` (any case) then exactly three slashes and an absolute path:
      ``sqlite://relative.db`` and ``sqlite:relative.db`` are refused, and so
      is SQLAlchemy's four-slash form ``sqlite:////abs/path.db``, which
      another tool would read as the same file but a person may have meant
      differently;
    * no query and no fragment (``?mode=ro`` would be silently ignored);
    * the path is taken percent-decoded (``%20`` is a space), and must then
      be normal: no ``.``, ``..`` or empty segment, no trailing ``/``, no NUL.
      So the path checked is the path opened. The command line's
      ``sqlite:///./file.db`` (relative to the current folder) is turned into
      an absolute URL by the command line before it reaches this function;
    * no ``:memory:``: an in-memory database cannot be shared by threads,
      workers or hosts, which is what every user of this URL needs.

    Whether the file exists is the caller's question.

    :raises BadValue: naming the URL (password hidden) and the rule it broke.
    """
    shown = repr(redact_url(url))
    if url[:len(_SQLITE_PREFIX)].lower() != _SQLITE_PREFIX:
        raise BadValue(f"{shown} is not sqlite:///absolute/path.db (three slashes, then an absolute path)")
    if url[len(_SQLITE_PREFIX):].startswith("/"):
        raise BadValue(f"{shown} has four slashes (SQLAlchemy's form); here an absolute path follows three: "
                       "sqlite:///var/lib/wstrust/registry.db")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise BadValue(f"{shown} is not a URL ({exc})") from None
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise BadValue(f"{shown} is not sqlite:///absolute/path.db: it may have no query (?...) or fragment (#...)")
    path = unquote(parts.path)
    segments = path.split("/")[1:]
    if segments and segments[0] in (".", ".."):
        raise BadValue(f"{shown} is relative to the current folder (the command line's form); here the path "
                       "must be absolute: sqlite:///var/lib/wstrust/registry.db")
    if path == "/" or path.endswith("/"):
        raise BadValue(f"{shown} is not sqlite:///absolute/path.db: it names a folder, not a file")
    if any(segment in ("", ".", "..") for segment in segments) or "\0" in path:
        raise BadValue(f"{shown} is not sqlite:///absolute/path.db: the path must be normal "
                       "(no '.', '..' or empty segments, no NUL)")
    if ":memory:" in path:
        raise BadValue(f"{shown} is not sqlite:///absolute/path.db: an in-memory database cannot be shared "
                       "by threads and workers")
    return path
