"""What the STS publishes about itself by GET: federation metadata (and the MEX document, :mod:`.mex`).

``GET /FederationMetadata/2007-06/FederationMetadata.xml`` (AD FS's path,
relative to the host; configurable) answers the document of
:mod:`wstrust_wsgi.metadata`: the issuer as entityID, every published signing
key, the token and claim types, the WS-Trust and MEX addresses, signed by the
primary key. It is served with an ``ETag`` (the SHA-256 of the bytes, equal on
every host, since the document is deterministic) and a ``Last-Modified`` (the
newest published certificate's notBefore), and conditional requests
(``If-None-Match``, ``If-Modified-Since``) are answered 304, so a relying
party that polls every hour costs one small answer while nothing changed.

The document is rebuilt when what it says changes (keys, issuer, addresses,
claim types), at most once per ``ttl`` per worker.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime

from cryptography.hazmat.primitives import hashes
from webob import Response

from ..keys import KeySet
from ..metadata import StsDescription, build_metadata
from .mex import MEX_PATH

#: AD FS's path for the federation metadata, relative to the host.
METADATA_PATH = "/FederationMetadata/2007-06/FederationMetadata.xml"


class _Built:
    """One built document, with what it was built from and its validators."""

    def __init__(self, inputs: tuple[object, ...], body: bytes, modified: datetime) -> None:
        self.inputs = inputs
        self.body = body
        self.etag = hashlib.sha256(body).hexdigest()[:32]
        self.modified = modified


class MetadataPublisher:
    """Builds and serves the STS's federation metadata.

    :param keys: the current key set (the STS's :class:`~.signing.KeyFollower`).
    :param issuer: the current issuer name (from the settings).
    :param claim_types: the claim types offered now.
    :param ttl: how long a built document is served before its inputs are read again.
    """

    def __init__(self, *, keys: Callable[[], KeySet], issuer: Callable[[], str],
                 claim_types: Callable[[], Iterable[str]], ttl: float = 1.0) -> None:
        self._keys, self._issuer, self._claim_types, self._ttl = keys, issuer, claim_types, ttl
        self._built: tuple[float, str, _Built] | None = None
        self._lock = threading.Lock()

    def response(self, endpoint: str) -> Response:
        """The document for an STS at ``endpoint``: 200, or 304 when the client's copy is current."""
        built = self.document(endpoint)
        response = Response(body=built.body, content_type="application/samlmetadata+xml", charset=None,
                            conditional_response=True)
        response.etag = built.etag
        response.last_modified = built.modified
        # Caches may keep it, but must ask again each time (a conditional request, answered 304 if unchanged).
        response.cache_control = "public, no-cache"
        return response

    def document(self, endpoint: str) -> _Built:
        """The built document for ``endpoint`` (rebuilt when its inputs changed, read at most every ttl)."""
        now = time.monotonic()
        cached = self._built
        if cached is not None and cached[1] == endpoint and now - cached[0] < self._ttl:
            return cached[2]
        keys = self._keys()
        inputs = (self._issuer(), endpoint, tuple(sorted(set(self._claim_types()))),
                  keys.primary.certificate.fingerprint(hashes.SHA256()),
                  tuple(c.fingerprint(hashes.SHA256()) for c in keys.published))
        if cached is not None and cached[2].inputs == inputs:
            built = cached[2]
        else:
            with self._lock:
                issuer, _, claims = inputs[:3]
                description = StsDescription(issuer, keys.published, endpoint, endpoint.rstrip("/") + MEX_PATH,
                                             claim_types=claims)
                modified = max(c.not_valid_before_utc for c in keys.published)
                built = _Built(inputs, build_metadata(description, keys.primary), modified)
        self._built = (now, endpoint, built)
        return built
