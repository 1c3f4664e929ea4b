"""Federation metadata: the document an STS publishes so that relying parties follow its keys.

The format is SAML 2.0 metadata (OASIS saml-metadata-2.0-os) carrying the
WS-Federation 1.2 role ``fed:SecurityTokenServiceType`` (ws-federation-1.2-spec-os
section 3.1), as AD FS publishes it at ``/FederationMetadata/2007-06/FederationMetadata.xml``:
an ``md:EntityDescriptor`` whose ``entityID`` is the issuer, signed enveloped
(exclusive c14n, RSA-SHA256) by the STS's primary key, with one
``md:KeyDescriptor use="signing"`` per published signing key. During a rollover
the next key and the previous one are published beside the primary, which is
how a relying party learns a key before the first token signed with it.

* :mod:`.build`: :func:`build_metadata` from a :class:`StsDescription`;
* :mod:`.read`: :func:`read_metadata`, which checks the signature against
  pinned certificates (when given) and the entityID, and returns the signing
  certificates of the STS role.

Knows no HTTP and no stores: the STS serves what :mod:`.build` writes
(:mod:`wstrust_wsgi.sts.published`), the middleware follows what :mod:`.read`
accepts (:mod:`wstrust_wsgi.trust`).
"""

from __future__ import annotations

from .build import StsDescription, build_metadata
from .read import StsMetadata, read_metadata

__all__ = ["StsDescription", "StsMetadata", "build_metadata", "read_metadata"]
