"""Minting SAML tokens for tests: :class:`TokenFactory`, with a throwaway key made once per process.

The tokens are the package's own: :class:`~wstrust_wsgi.saml.AssertionContent`
built and signed by :class:`~wstrust_wsgi.saml.AssertionSigner`, exactly as the
STS issues them, so a service that admits a minted token admits the STS's.
Each negative variant (expired, not yet valid, wrong audience, wrong issuer,
tampered after signing, unsigned, signed by an untrusted key) differs from a
good token in that one respect, so the test that uses it proves that one check.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography import x509
from lxml import etree

from .. import _xml, ns, xmlenc
from .._time import Clock, utcnow
from ..client import IssuedToken
from ..errors import ConfigurationError
from ..keys import SigningKey
from ..saml import SAML2, SAML11, AssertionContent, AssertionSigner, SamlVersion, build_saml2, build_saml11
from ..xmlenc import encrypt_key

#: Issuer and audience of the kit's tokens unless a test names its own (``.test`` is a reserved name).
DEFAULT_ISSUER = "https://sts.test/services/sts"
DEFAULT_AUDIENCE = "https://service.test/soap"
DEFAULT_SUBJECT = "alice"
#: What :meth:`TokenFactory.wrong_audience` and :meth:`TokenFactory.wrong_issuer` write instead.
WRONG_AUDIENCE = "urn:wstrust-wsgi:testing:wrong-audience"
WRONG_ISSUER = "urn:wstrust-wsgi:testing:wrong-issuer"

_VERSIONS = {SAML2.name: SAML2, SAML11.name: SAML11}
_BUILDERS = {SAML2.name: build_saml2, SAML11.name: build_saml11}
#: The throwaway certificates are valid for this whole span, so that a test moving its clock
#: years away still has a valid signer (the middleware checks the certificate's validity too).
_VALID_FROM = datetime(2000, 1, 1, tzinfo=timezone.utc)
_VALID_DAYS = 100 * 366


def throwaway_key(role: str = "trusted") -> SigningKey:
    """The process's throwaway signing key for ``role`` (made on first use, then the same object).

    ``"trusted"`` signs the kit's good tokens and the in-process STS's;
    ``"untrusted"`` signs :meth:`TokenFactory.untrusted`. Never use them outside tests:
    they live in memory and their certificates say "DEMO ONLY".
    """
    return _key(role)


@functools.cache
def _key(role: str) -> SigningKey:
    # cached by the role alone: throwaway_key() and throwaway_key("trusted") are one key
    return SigningKey.generate(f"wstrust-wsgi testing ({role} signer)", days=_VALID_DAYS, valid_from=_VALID_FROM)


@functools.cache
def _throwaway_signer(role: str) -> AssertionSigner:
    return AssertionSigner(throwaway_key(role))


def _version(name: str) -> SamlVersion:
    try:
        return _VERSIONS[name]
    except KeyError:
        raise ConfigurationError(f"version: '2.0' or '1.1', not {name!r}") from None


class TokenFactory:
    """Mints signed SAML 2.0 and 1.1 bearer tokens for the service under test, and the tokens it must refuse.

    ::

        tokens = TokenFactory(audience="https://svc.example/soap", issuer="https://sts.example/sts")
        app = RelyingPartyMiddleware(service, audience=tokens.audience, issuer=tokens.issuer,
                                     trusted_certs=tokens.trusted_certs)
        good = tokens.mint("alice", roles=["admin"])      # an IssuedToken, as StsClient returns
        bad = tokens.expired()                            # same, but its window ended an hour ago

    The constructor's values are the defaults of every token; each method
    takes the same keywords as :meth:`mint` to change one of them. The key is
    :func:`throwaway_key` unless ``signing_key`` is given (made once per
    process: creating factories is cheap). ``clock`` gives "now"; pass the
    clock the middleware under test uses (a
    :class:`~wstrust_wsgi.testing.SettableClock`) to move both together.
    """

    def __init__(
        self,
        *,
        audience: str = DEFAULT_AUDIENCE,
        issuer: str = DEFAULT_ISSUER,
        subject: str = DEFAULT_SUBJECT,
        version: str = "2.0",
        lifetime: timedelta = timedelta(minutes=5),
        clock: Clock = utcnow,
        signing_key: SigningKey | None = None,
    ) -> None:
        _version(version)
        if lifetime <= timedelta(0):
            raise ConfigurationError(f"lifetime: must be positive, not {lifetime}")
        self.audience = audience
        self.issuer = issuer
        self.subject = subject
        self.version = version
        self.lifetime = lifetime
        self.clock = clock
        self.signing_key = signing_key or throwaway_key()
        self._signer = AssertionSigner(signing_key) if signing_key else _throwaway_signer("trusted")

    def __repr__(self) -> str:
        return f"TokenFactory(audience={self.audience!r}, issuer={self.issuer!r}, version={self.version!r})"

    @property
    def trusted_certs(self) -> list[x509.Certificate]:
        """What to give the middleware under test as ``trusted_certs``."""
        return [self.signing_key.certificate]

    @property
    def certificate_pem(self) -> bytes:
        """The signing certificate as PEM, for a service that reads its trusted certificate from a file."""
        return self.signing_key.certificate_pem

    # ------------------------------------------------------------------ good tokens

    def mint(
        self,
        subject: str | None = None,
        *,
        roles: Iterable[str] = (),
        attributes: Mapping[str, str | Sequence[str]] | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        version: str | None = None,
        lifetime: timedelta | None = None,
        issued_at: datetime | None = None,
        not_before: datetime | None = None,
        assertion_id: str | None = None,
        algorithm: str = "rsa-sha256",
        confirmation: str = "bearer",
        encrypt_for: x509.Certificate | None = None,
        proof_key_for: x509.Certificate | None = None,
    ) -> IssuedToken:
        """A signed token, valid from ``not_before`` (default: ``issued_at``, default: now) for ``lifetime``.

        ``roles`` travel as the role claim (:data:`wstrust_wsgi.ns.CLAIM_ROLE`),
        which :attr:`VerifiedAssertion.roles <wstrust_wsgi.VerifiedAssertion.roles>`
        reads; ``attributes`` maps claim URIs to one value or several.
        ``algorithm`` is the signature setting (``rsa-sha256``, ``rsa-sha384``,
        ``rsa-sha512``, ``rsa-sha1``). ``encrypt_for`` (the service's
        certificate) encrypts the signed token for it (:func:`encrypted_token`):
        a ``saml2:EncryptedAssertion``, or for SAML 1.1 an ``xenc:EncryptedData``.
        ``confirmation="holder-of-key"`` with
        ``proof_key_for`` (the service's certificate, whose key is in its
        ``decryption_keys``) mints a symmetric holder-of-key token: a fresh
        256-bit proof key in the confirmation, encrypted for that certificate,
        and held by the returned token, so that :func:`soap_request` signs the
        request with it as :class:`~wstrust_wsgi.StsClient` would.
        """
        return self._mint(self._signer, subject, roles=roles, attributes=attributes, audience=audience,
                          issuer=issuer, version=version, lifetime=lifetime, issued_at=issued_at,
                          not_before=not_before, assertion_id=assertion_id, algorithm=algorithm,
                          confirmation=confirmation, encrypt_for=encrypt_for, proof_key_for=proof_key_for)

    def content(
        self,
        subject: str | None = None,
        *,
        roles: Iterable[str] = (),
        attributes: Mapping[str, str | Sequence[str]] | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        lifetime: timedelta | None = None,
        issued_at: datetime | None = None,
        not_before: datetime | None = None,
        assertion_id: str | None = None,
    ) -> AssertionContent:
        """What a minted token says (the :class:`AssertionContent` the signer is given), with the defaults applied."""
        issued = issued_at if issued_at is not None else self.clock()
        start = not_before if not_before is not None else issued
        claims: dict[str, tuple[str, ...]] = {
            name: (values,) if isinstance(values, str) else tuple(values)
            for name, values in (attributes or {}).items()
        }
        role_list = tuple(roles)
        if role_list:
            claims[ns.CLAIM_ROLE] = claims.get(ns.CLAIM_ROLE, ()) + role_list
        extra = {"assertion_id": assertion_id} if assertion_id is not None else {}
        return AssertionContent(
            issuer=self.issuer if issuer is None else issuer,
            subject=self.subject if subject is None else subject,
            audience=self.audience if audience is None else audience,
            issue_instant=issued,
            not_before=start,
            not_on_or_after=start + (self.lifetime if lifetime is None else lifetime),
            attributes=claims,
            **extra,
        )

    # ------------------------------------------------------------------ tokens to refuse
    # Each takes :meth:`mint`'s keywords for everything but the one thing it gets wrong.

    def expired(self, subject: str | None = None, *, ago: timedelta = timedelta(hours=1),
                **options: Any) -> IssuedToken:
        """A good token whose validity window ended ``ago`` (an hour: beyond any reasonable clock skew)."""
        lifetime = options.pop("lifetime", None) or self.lifetime
        return self.mint(subject, issued_at=self.clock() - ago - lifetime, lifetime=lifetime, **options)

    def not_yet_valid(self, subject: str | None = None, *, starts_in: timedelta = timedelta(hours=1),
                      **options: Any) -> IssuedToken:
        """A good token whose validity window begins ``starts_in`` from now (an hour)."""
        return self.mint(subject, not_before=self.clock() + starts_in, **options)

    def wrong_audience(self, subject: str | None = None, **options: Any) -> IssuedToken:
        """A good token for another service (:data:`WRONG_AUDIENCE`)."""
        return self.mint(subject, audience=WRONG_AUDIENCE, **options)

    def wrong_issuer(self, subject: str | None = None, **options: Any) -> IssuedToken:
        """A token signed by the trusted key that names another issuer (:data:`WRONG_ISSUER`)."""
        return self.mint(subject, issuer=WRONG_ISSUER, **options)

    def untrusted(self, subject: str | None = None, **options: Any) -> IssuedToken:
        """A token like :meth:`mint`'s, validly signed, by a key that is not in :attr:`trusted_certs`."""
        return self._mint(_throwaway_signer("untrusted"), subject, **options)

    def tampered(self, subject: str | None = None, *, changed_subject: str = "mallory",
                 **options: Any) -> IssuedToken:
        """A good token whose subject became ``changed_subject`` after signing (its digest no longer matches)."""
        token = self.mint(subject, **options)
        root = _xml.parse(token.assertion)
        saml1 = root.tag == _xml.qname(ns.SAML1, "Assertion")
        name_tag = _xml.qname(ns.SAML1, "NameIdentifier") if saml1 else _xml.qname(ns.SAML2, "NameID")
        for name in root.iter(name_tag):
            name.text = changed_subject
        return dataclasses.replace(token, assertion=etree.tostring(root))

    def unsigned(self, subject: str | None = None, *, version: str | None = None, **options: Any) -> IssuedToken:
        """What :meth:`mint` would sign, built by the same builder, without any signature."""
        saml_version = _version(version or self.version)
        content = self.content(subject, **options)
        root = _BUILDERS[saml_version.name](content)
        placeholder = root.find(_xml.qname(ns.DS, "Signature"))
        if placeholder is not None:
            root.remove(placeholder)
        return _issued(etree.tostring(root), saml_version, content)

    # ------------------------------------------------------------------ the one signing path

    def _mint(self, signer: AssertionSigner, subject: str | None, *, version: str | None = None,
              algorithm: str = "rsa-sha256", confirmation: str = "bearer",
              encrypt_for: x509.Certificate | None = None, proof_key_for: x509.Certificate | None = None,
              **content_options: Any) -> IssuedToken:
        content = self.content(subject, **content_options)
        proof_key = None
        if confirmation == "holder-of-key":
            if proof_key_for is None:
                raise ConfigurationError("confirmation: 'holder-of-key' needs proof_key_for=<the service's "
                                         "certificate>, which the proof key is encrypted for")
            proof_key = os.urandom(32)
            key_info = etree.Element(_xml.qname(ns.DS, "KeyInfo"), nsmap={"ds": ns.DS})
            key_info.append(encrypt_key(proof_key, proof_key_for))
            content = dataclasses.replace(content, proof_key_info=key_info)
        elif confirmation != "bearer":
            raise ConfigurationError(f"confirmation: 'bearer' or 'holder-of-key', not {confirmation!r}")
        saml_version = _version(version or self.version)
        signed = signer.sign(saml_version, content, algorithm=algorithm)
        if encrypt_for is not None:
            signed = encrypted_token(signed, saml_version, encrypt_for)
        issued = _issued(signed, saml_version, content)
        return issued if proof_key is None else dataclasses.replace(issued, proof_key=proof_key, key_type="symmetric")


def encrypted_token(signed: bytes, version: SamlVersion, certificate: x509.Certificate) -> bytes:
    """``signed`` encrypted for the holder of ``certificate`` (:func:`wstrust_wsgi.xmlenc.encrypt`, its defaults).

    SAML 2.0 wraps the ``xenc:EncryptedData`` in ``saml2:EncryptedAssertion``
    (core 2.3.4); SAML 1.1 has no such element, so its EncryptedData stands
    alone in the Security header, as WS-Security's token encryption sends it.
    The signature is made first and encrypted with the assertion, so the
    service decrypts, then verifies the very bytes the signer wrote.
    """
    encrypted = xmlenc.encrypt(signed, certificate)
    if version is SAML2:
        wrapper = etree.Element(_xml.qname(ns.SAML2, "EncryptedAssertion"), nsmap={"saml2": ns.SAML2})
        wrapper.append(encrypted)
        encrypted = wrapper
    return etree.tostring(encrypted)


def _issued(assertion: bytes, version: SamlVersion, content: AssertionContent) -> IssuedToken:
    """The token as :class:`~wstrust_wsgi.StsClient` hands it over: exact bytes, type, ID, window, audience."""
    return IssuedToken(
        assertion=assertion,
        token_type=version.token_type,
        assertion_id=content.assertion_id,
        created=content.not_before,
        expires=content.not_on_or_after,
        applies_to=content.audience,
    )
