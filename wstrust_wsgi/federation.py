"""The relying party's trust, followed from the STS's federation metadata (key rollover without an outage).

A :class:`MetadataTrust` is what :class:`~wstrust_wsgi.RelyingPartyMiddleware`
asks for its trusted certificates when it is given ``metadata_url``:

* **at construction** it reads the metadata (an ``https://`` URL, or a file
  path / ``file://`` URL) and checks it with :func:`wstrust_wsgi.metadata.read_metadata`
  (the signature against ``metadata_signing_certs`` when given, the entityID
  against the issuer). If that fails it falls back to the last good copy kept
  in ``metadata_cache``, checked the same way; with neither, construction
  fails with one sentence saying both;
* **in the background**, each worker process (started lazily after gunicorn
  forks, one daemon thread per process) asks again every ``metadata_refresh``
  with a conditional request (``If-None-Match`` / ``If-Modified-Since``; for a
  file, its size and modification time). A new document that passes the checks
  replaces the certificates and the cached copy (written to a temporary file
  and renamed, so a reader never sees half a file). One that fails is logged and
  ignored: the last good copy stays in force;
* **per request**, the middleware reads :attr:`certificates` (one attribute
  read) and calls :meth:`check_fresh`: a copy not confirmed for longer than
  ``metadata_max_age`` is refused (fail closed, the default) or kept in service
  with a warning, as configured.

Security: without ``metadata_signing_certs`` only the transport vouches for
the document, so plain ``http://`` is refused then; a file is trusted as its
permissions protect it. With pinned metadata certificates, pin the STS's next
key as well (it signs the metadata once promoted).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509

from . import _arguments
from ._time import Clock, utcnow
from .errors import ConfigurationError, MetadataError, RequestFailed
from .keys import CertificateSource, load_certificates
from .metadata import StsMetadata, read_metadata
from .metadata.read import MAX_BYTES
from .saml import ValidationPolicy

log = logging.getLogger("wstrust_wsgi.metadata")

#: What :meth:`MetadataTrust.check_fresh` does with a copy older than the maximum age.
WHEN_STALE = ("refuse", "serve")


@dataclass(frozen=True)
class _Fetched:
    """One answer of the source: the document (None: unchanged since the validators) and its new validators."""

    body: bytes | None
    validators: tuple[str | None, str | None]


Fetch = Callable[[tuple[str | None, str | None]], _Fetched]


def _http_fetch(url: str, timeout: float) -> Fetch:
    def fetch(validators: tuple[str | None, str | None]) -> _Fetched:
        etag, modified = validators
        headers = {"Accept": "application/samlmetadata+xml, application/xml, text/xml"}
        if etag:
            headers["If-None-Match"] = etag
        if modified:
            headers["If-Modified-Since"] = modified
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (scheme checked)
                body = response.read(MAX_BYTES + 1)
                if len(body) > MAX_BYTES:
                    raise MetadataError(f"metadata at {url} is larger than {MAX_BYTES} bytes")
                return _Fetched(body, (response.headers.get("ETag"), response.headers.get("Last-Modified")))
        except urllib.error.HTTPError as exc:
            if exc.code == 304:
                return _Fetched(None, validators)
            raise MetadataError(f"metadata at {url}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise MetadataError(f"metadata at {url} cannot be reached ({getattr(exc, 'reason', exc)})") from None
    return fetch


def _file_fetch(path: Path) -> Fetch:
    def fetch(validators: tuple[str | None, str | None]) -> _Fetched:
        try:
            stat = path.stat()
            stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
            if validators[0] == stamp:
                return _Fetched(None, validators)
            return _Fetched(path.read_bytes()[:MAX_BYTES + 1], (stamp, None))
        except OSError as exc:
            raise MetadataError(f"metadata file {path} cannot be read ({exc.strerror})") from None
    return fetch


class MetadataTrust:
    """The signing certificates an STS publishes, followed in the background; see the module docstring.

    :param url: ``https://...``, ``http://...`` (only with ``signing_certs``), a file path or ``file://`` URL.
    :param issuers: the entityIDs accepted (the middleware's ``issuer``).
    :param refresh: seconds between two conditional requests.
    :param cache: a file keeping the last good copy, so a restart during an STS outage still starts.
    :param signing_certs: certificates one of which must have signed the document; empty: TLS vouches.
    :param max_age: how long a copy not confirmed by the source may be used; None: forever.
    :param when_stale: ``"refuse"`` every token once the copy is older (fail closed), or ``"serve"`` on.
    """

    def __init__(self, *, url: str, issuers: Iterable[str], refresh: float = 3600.0, cache: str | os.PathLike[str] |
                 None = None, signing_certs: Iterable[x509.Certificate] = (), max_age: timedelta | None = None,
                 when_stale: str = "refuse", clock: Clock = utcnow, timeout: float = 10.0) -> None:
        self.url = url
        self._issuers = frozenset(issuers)
        self._signing_certs = tuple(signing_certs)
        if when_stale not in WHEN_STALE:
            raise ConfigurationError(f"metadata_when_stale: must be one of {WHEN_STALE}, not {when_stale!r}")
        if refresh <= 0:
            raise ConfigurationError(f"metadata_refresh: must be a positive duration, not {refresh!r}")
        self._refresh, self._max_age, self._when_stale, self._clock = refresh, max_age, when_stale, clock
        self._cache = Path(cache) if cache is not None else None
        self._fetch = self._fetcher(url, timeout)
        self._validators: tuple[str | None, str | None] = (None, None)
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._stopped = False
        self._wake = threading.Event()
        #: The accepted metadata in force, and when the source last confirmed it.
        self.current: StsMetadata
        self.confirmed: datetime
        #: Bumped whenever the certificates change (the middleware rebuilds its policy then).
        self.generation = 0
        self._start()

    def _fetcher(self, url: str, timeout: float) -> Fetch:
        scheme = urllib.parse.urlsplit(url).scheme.lower()
        if scheme == "https" or (scheme == "http" and self._signing_certs):
            return _http_fetch(url, timeout)
        if scheme == "http":
            raise ConfigurationError(f"metadata_url: {url} is plain http and no metadata_signing_certs are given: "
                                     "anyone on the path could replace the STS's keys (use https, or pin them)")
        if scheme == "file":
            return _file_fetch(Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)))
        if scheme == "" or len(scheme) == 1:  # a path (or a Windows drive letter)
            return _file_fetch(Path(url))
        raise ConfigurationError(f"metadata_url: {url!r} must be an https:// URL, a file path or a file:// URL")

    # ------------------------------------------------------------------ reading

    @property
    def certificates(self) -> tuple[x509.Certificate, ...]:
        return self.current.signing_certificates

    def _accept(self, body: bytes) -> StsMetadata:
        return read_metadata(body, issuer=self._issuers, now=self._clock(), signing_certs=self._signing_certs)

    def _start(self) -> None:
        """The first copy: from the source, else from the cache; neither is one sentence."""
        try:
            fetched = self._fetch(self._validators)
            assert fetched.body is not None
            self._install(self._accept(fetched.body), fetched, self._clock())
            return
        except MetadataError as exc:
            problem = str(exc)
        cached = self._read_cache()
        if isinstance(cached, str):
            raise ConfigurationError(f"metadata_url: {problem}, and {cached}")
        log.warning("%s; using the cached copy %s of %s", problem, self._cache, cached[1].isoformat())
        self.current, self.confirmed = cached
        self.generation += 1

    def _read_cache(self) -> tuple[StsMetadata, datetime] | str:
        if self._cache is None:
            return "no metadata_cache is configured"
        try:
            body = self._cache.read_bytes()
            written = datetime.fromtimestamp(self._cache.stat().st_mtime, timezone.utc)
        except OSError as exc:
            return f"the cached copy {self._cache} cannot be read ({exc.strerror})"
        try:
            return self._accept(body), written
        except MetadataError as exc:
            return f"the cached copy {self._cache} is refused ({exc})"

    def _install(self, metadata: StsMetadata, fetched: _Fetched, now: datetime) -> None:
        changed = self.generation == 0 or metadata.signing_certificates != self.current.signing_certificates
        self.current, self.confirmed, self._validators = metadata, now, fetched.validators
        if changed:
            self.generation += 1
            log.info("metadata of %s from %s: %d signing certificate(s) trusted", metadata.entity_id, self.url,
                     len(metadata.signing_certificates))
        if fetched.body is not None and self._cache is not None:
            self._write_cache(fetched.body)

    def _write_cache(self, body: bytes) -> None:
        assert self._cache is not None
        try:
            handle, temporary = tempfile.mkstemp(dir=self._cache.parent, prefix=f".{self._cache.name}.")
            with os.fdopen(handle, "wb") as out:
                out.write(body)
            os.replace(temporary, self._cache)  # atomic: another worker reads the old or the new copy, whole
        except OSError as exc:
            log.warning("metadata cache %s cannot be written (%s); the copy in memory is used", self._cache, exc)

    def refresh(self) -> bool:
        """Ask the source once now; True if the certificates changed. A failure is logged, never raised."""
        with self._lock:
            try:
                fetched = self._fetch(self._validators)
                now = self._clock()
                if fetched.body is None:  # 304 or an unchanged file: confirmed as it is
                    self.confirmed = now
                    if self._cache is not None:
                        self._cache.touch(exist_ok=True)
                    return False
                before = self.generation
                self._install(self._accept(fetched.body), fetched, now)
                return self.generation != before
            except MetadataError as exc:
                log.warning("metadata refresh from %s refused, the last good copy (%s) stays in force: %s",
                            self.url, self.confirmed.isoformat(), exc)
                return False
            except Exception:  # never let the refresher thread die
                log.exception("metadata refresh from %s failed unexpectedly; the last good copy stays", self.url)
                return False

    def check_fresh(self) -> None:
        """Refuse tokens when the copy is past ``max_age`` and configured to fail closed; start the refresher."""
        self.ensure_refreshing()
        if self._max_age is None:
            return
        age = self._clock() - self.confirmed
        if age <= self._max_age:
            return
        if self._when_stale == "refuse":
            raise RequestFailed(f"metadata from {self.url} last confirmed {self.confirmed.isoformat()}, older than "
                                f"metadata_max_age {self._max_age}", reason="The service cannot check tokens right now.")
        log.warning("metadata from %s is older than metadata_max_age (%s); still serving", self.url, age)

    # ------------------------------------------------------------------ the refresher

    def ensure_refreshing(self) -> None:
        """One daemon thread per process, started here after a fork (threads do not survive one)."""
        pid = os.getpid()
        if self._pid == pid or self._stopped:
            return
        with self._lock:
            if self._pid == pid:
                return
            self._pid = pid
            self._wake = threading.Event()
            threading.Thread(target=self._loop, name="wstrust-metadata", daemon=True).start()

    def _loop(self) -> None:
        while not self._wake.wait(self._refresh):
            self.refresh()

    def stop(self) -> None:
        """Stop the refresher for good (tests refresh by hand; a process that exits needs nothing)."""
        self._stopped = True
        self._wake.set()



class FollowedPolicy:
    """The middleware's validation policy, rebuilt when the followed metadata brings other certificates.

    ``build`` makes a policy from the trusted certificates (the pinned
    ``trusted_certs`` and the metadata's). A new policy object also empties
    the verification cache in effect, since cached verdicts are bound to the
    policy they were reached under: a retired key's tokens are verified again,
    and refused.
    """

    def __init__(self, pinned: tuple[x509.Certificate, ...], trust: MetadataTrust | None,
                 build: Callable[[tuple[x509.Certificate, ...]], ValidationPolicy]) -> None:
        self.trust, self._pinned, self._build = trust, pinned, build
        self._generation = trust.generation if trust is not None else 0
        self._policy = build(self._certificates())
        self._lock = threading.Lock()  # not the trust's: a refresh holds that one while it fetches

    def _certificates(self) -> tuple[x509.Certificate, ...]:
        followed = self.trust.certificates if self.trust is not None else ()
        return self._pinned + tuple(c for c in followed if c not in self._pinned)

    def policy(self) -> ValidationPolicy:
        """The policy in force; raises :class:`RequestFailed` for a stale copy configured to fail closed."""
        trust = self.trust
        if trust is None:
            return self._policy
        trust.check_fresh()
        if trust.generation != self._generation:
            with self._lock:  # one rebuild per change
                if trust.generation != self._generation:
                    self._policy = self._build(self._certificates())
                    self._generation = trust.generation
        return self._policy


def follow(*, pinned: tuple[x509.Certificate, ...], issuers: Iterable[str], url: str | None,
           refresh: timedelta | float, cache: str | os.PathLike[str] | None,
           signing_certs: CertificateSource | Iterable[CertificateSource], max_age: timedelta | float | None,
           when_stale: str, clock: Clock,
           build: Callable[[tuple[x509.Certificate, ...]], ValidationPolicy]) -> FollowedPolicy:
    """The middleware's ``trusted_certs`` and ``metadata_*`` arguments, checked, as a :class:`FollowedPolicy`."""
    if url is None:
        if not pinned:
            raise ConfigurationError("trusted_certs: give the STS's certificate(s), or metadata_url to follow its "
                                     "federation metadata")
        return FollowedPolicy(pinned, None, build)
    if not isinstance(url, (str, os.PathLike)) or not os.fspath(url):
        raise ConfigurationError(f"metadata_url: must be an https:// URL or a file path, not {_arguments.given(url)}")
    try:
        pinned_metadata = load_certificates(signing_certs) if signing_certs else ()
    except ConfigurationError as exc:
        # the loader names the middleware's other argument ("trusted_certs: ..."): name this one
        raise ConfigurationError("metadata_signing_certs: " + str(exc).removeprefix("trusted_certs: ")) from None
    trust = MetadataTrust(
        url=os.fspath(url), issuers=issuers, cache=cache, signing_certs=pinned_metadata, clock=clock,
        refresh=_arguments.duration(refresh, "metadata_refresh", positive=True).total_seconds(),
        max_age=None if max_age is None else _arguments.duration(max_age, "metadata_max_age", positive=True),
        when_stale=when_stale)
    return FollowedPolicy(pinned, trust, build)
