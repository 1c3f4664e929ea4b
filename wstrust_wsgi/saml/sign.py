"""Signing assertions: an enveloped XML-DSig signature over the assertion's ID, on top of :mod:`..xmldsig`.

SAML 2.0 puts ds:Signature right after Issuer (saml-schema-assertion-2.0),
SAML 1.1 last (oasis-sstc-saml-schema-assertion-1.1). The assertion is
serialized in its exclusive canonical form, which is also what the Reference
digests, and the Signature bytes are spliced in where the schema wants them.
"""

from __future__ import annotations

from ..keys import SigningKey
from ..xmldsig import Signer, canonical, setting_names
from .build import _SKELETONS, AssertionContent
from .versions import SAML2, SamlVersion


class AssertionSigner:
    """Builds and signs assertions with one key: enveloped XML-DSig, exclusive c14n, RSA-SHA256 by default.

    One :class:`~wstrust_wsgi.xmldsig.Signer` per signature algorithm setting,
    made once; signing keeps no state between calls, so one AssertionSigner
    serves every thread.
    """

    def __init__(self, key: SigningKey) -> None:
        self._key = key
        self._signers = {name: Signer(key.private_key, name, certificate=key.certificate)
                         for name in setting_names("rsa")}

    def sign(self, version: SamlVersion, content: AssertionContent, *, algorithm: str = "rsa-sha256") -> bytes:
        """The serialized signed assertion (bytes that declare every namespace they use).

        The canonical bytes (exclusive c14n, no comments) are what is digested
        (the enveloped-signature transform removes exactly the Signature
        spliced in here), and they are also a complete serialization; in them
        an end tag can only be markup (``<`` in text and attributes is
        escaped), so the first ``</Issuer>`` is the assertion's Issuer (its
        first child; SAML 2.0 is in the default namespace) and the document
        ends with the assertion's end tag.
        """
        skeleton = _SKELETONS[version.name]
        data = canonical(skeleton.build(content))
        signature = self._signers[algorithm].enveloped(data, content.assertion_id)
        if version is SAML2:
            at = data.index(skeleton.issuer_end) + len(skeleton.issuer_end)
        else:
            at = len(data) - len(skeleton.root_end)
            assert data.endswith(skeleton.root_end)
        return data[:at] + signature + data[at:]
