"""The one exception tree of wstrust-wsgi.

Every error that can reach a SOAP peer is a :class:`SoapFault`: it carries the
fault code the specification names and a *client-safe* reason. The precise
cause (which check failed, on which value) is the exception's message and goes
to the server log only, never to the peer::

    WsTrustError
     +-- SoapFault                       renders as a SOAP 1.1 / 1.2 fault
     |    +-- MalformedMessage           soap:Client / env:Sender  (not SOAP, bad XML, too big)
     |    +-- VersionMismatch            soap:VersionMismatch
     |    +-- MustUnderstand             soap:MustUnderstand
     |    +-- TrustFault                 wst:*  (namespace of the request's WS-Trust version)
     |    |    +-- InvalidRequest        wst:InvalidRequest
     |    |    +-- FailedAuthentication  wst:FailedAuthentication
     |    |    +-- NotAuthorized         wst:RequestFailed (good password, no allowed role)
     |    |    +-- UnableToRenew         wst:UnableToRenew (a Renew the STS will not grant)
     |    |    +-- RequestFailed         wst:RequestFailed
     |    |         +-- StoreUnavailable  wst:RequestFailed (a store could not answer)
     |    +-- SecurityFault              wsse:*
     |         +-- InvalidSecurity       wsse:InvalidSecurity
     |         +-- InvalidSecurityToken  wsse:InvalidSecurityToken
     |         +-- FailedCheck           wsse:FailedCheck
     |         |    +-- DecryptionFailed  wsse:FailedCheck, one reason for every decryption failure
     |         +-- SecurityTokenUnavailable  wsse:SecurityTokenUnavailable
     |         +-- UnsupportedAlgorithm  wsse:UnsupportedAlgorithm
     |         +-- MessageExpired        wsse:MessageExpired
     +-- RemoteFault                     client side: a peer answered with a SOAP fault
     +-- TransportError                  client side: no answer, or not SOAP
     +-- ConfigurationError              a configuration value broke a rule (also a ValueError)
     |    +-- BadValue                   a name, address or claim broke a rule of wstrust_wsgi.model
     |    +-- KeyPairError               a signing key and certificate that cannot sign together
     +-- RegistryError                   a registry change named something unknown, or a duplicate
     +-- MetadataError                   a federation metadata document refused (signature, entityID, shape)

How a fault is rendered (SOAP version, HTTP status) is decided in :mod:`wstrust_wsgi.soap`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

Family = Literal["soap", "wst", "wsse"]


class WsTrustError(Exception):
    """Root of every exception raised by wstrust-wsgi."""


class SoapFault(WsTrustError):
    """An error that is answered to the peer as a SOAP fault.

    ``str(exc)`` is the precise, log-only cause. :attr:`reason` is what the
    peer is told; it never names secrets, users' existence or internal state.
    """

    family: ClassVar[Family] = "soap"
    code: ClassVar[str] = "Client"
    #: True for faults caused by the sender (SOAP 1.1 Client, SOAP 1.2 Sender).
    sender: ClassVar[bool] = True
    default_reason: ClassVar[str] = "The message could not be processed."
    #: The relying party's check that failed (a name of :data:`wstrust_wsgi._checks.CHECKS`), with what
    #: it expected and what it found: server log and ``wstrust-wsgi diagnose`` only, never the peer.
    check: str = ""

    def __init__(self, detail: str, *, reason: str | None = None, check: str | None = None,
                 expected: object = None, actual: object = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.reason = reason or self.default_reason
        if check is not None:
            self.check = check
        self.expected = expected
        self.actual = actual


class MalformedMessage(SoapFault):
    """The request is not a well-formed, acceptable SOAP message."""

    default_reason = "The request is not a well-formed SOAP message."


class VersionMismatch(SoapFault):
    """The envelope's SOAP version does not match the one the HTTP request announced."""

    check = "envelope"

    code = "VersionMismatch"
    sender = False
    default_reason = "The SOAP envelope version does not match the request's content type."


class MustUnderstand(SoapFault):
    """A header marked mustUnderstand is not one this endpoint processes."""

    code = "MustUnderstand"
    check = "must-understand"
    sender = False
    default_reason = "A mandatory header was not understood."


class TrustFault(SoapFault):
    """A WS-Trust fault; the ``wst`` prefix takes the request's WS-Trust namespace."""

    family = "wst"
    code = "RequestFailed"
    default_reason = "The specified request failed."


class InvalidRequest(TrustFault):
    code = "InvalidRequest"
    default_reason = "The request was invalid or malformed."


class FailedAuthentication(TrustFault):
    code = "FailedAuthentication"
    default_reason = "Authentication failed."


class NotAuthorized(TrustFault):
    """The user authenticated but holds none of the roles allowed to request tokens."""

    code = "RequestFailed"
    default_reason = "The user is not authorized to request a token."


class UnableToRenew(TrustFault):
    """A Renew refused: not our token, not renewable as asked at issue, cancelled, or too late.

    WS-Trust 1.3 section 11: "The requested renewal failed."
    """

    code = "UnableToRenew"
    default_reason = "The requested renewal failed."


class RequestFailed(TrustFault):
    code = "RequestFailed"
    sender = False
    default_reason = "The specified request failed."


class StoreUnavailable(RequestFailed):
    """A store (user directory, registry, replay cache) could not answer, so the request is refused.

    What the stores raise instead of a WS-Trust fault of their own choosing:
    the fault code stays ``wst:RequestFailed`` (a Receiver fault), so the
    peer sees what it always saw, while the stores need know nothing of the
    wire. Stores fail closed: never "new nonce" or "authenticated" unchecked.
    """


class SecurityFault(SoapFault):
    """A WS-Security 1.1 fault (``wsse`` namespace)."""

    family = "wsse"
    code = "InvalidSecurity"
    default_reason = "An error was discovered processing the <wsse:Security> header."


class InvalidSecurity(SecurityFault):
    code = "InvalidSecurity"


class InvalidSecurityToken(SecurityFault):
    code = "InvalidSecurityToken"
    default_reason = "An invalid security token was provided."


class FailedCheck(SecurityFault):
    code = "FailedCheck"
    default_reason = "The signature or decryption was invalid."


class SecurityTokenUnavailable(SecurityFault):
    code = "SecurityTokenUnavailable"
    default_reason = "A required security token could not be found."


class UnsupportedAlgorithm(SecurityFault):
    code = "UnsupportedAlgorithm"
    check = "algorithms"
    default_reason = "An unsupported signature or encryption algorithm was used."


class MessageExpired(SecurityFault):
    code = "MessageExpired"
    default_reason = "The message or its security token has expired or is not yet valid."


class DecryptionFailed(FailedCheck):
    """Encrypted data that could not be decrypted, whatever the cause; raised by :mod:`wstrust_wsgi.xmlenc`.

    One class and one reason for a refused algorithm, a wrong key, bad OAEP or
    CBC padding, a bad GCM tag and a plaintext the parser refuses: a peer that
    could tell them apart would hold a decryption oracle (Jager and Somorovsky,
    CCS 2011; Bleichenbacher's attack on XML Encryption, ESORICS 2012). The log
    detail names the cause only where the cause is public (the algorithm the
    sender chose, the shape of the message), never which secret step failed.
    """

    default_reason = "The encrypted security token could not be processed."
    check = "decryption"


class RemoteFault(WsTrustError):
    """A peer (STS or service) answered with a SOAP fault.

    :attr:`code` is the most specific fault code as ``{namespace}local`` text
    (the SOAP 1.2 Subcode when there is one), :attr:`reason` the peer's text.
    """

    def __init__(self, code: str, reason: str, *, status: int, soap_code: str = "") -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.status = status
        self.soap_code = soap_code

    @property
    def local_code(self) -> str:
        """The fault code without its namespace, e.g. ``FailedAuthentication``."""
        return self.code.rsplit("}", 1)[-1]


class TransportError(WsTrustError):
    """The peer could not be reached, or answered something that is not SOAP."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class ConfigurationError(WsTrustError, ValueError):
    """A configuration value broke a rule; the message names the setting and the rule."""


class BadValue(ConfigurationError):
    """A value (name, address, claim URI, number) broke a rule; the message names the value and the rule.

    Raised by the rules in :mod:`wstrust_wsgi.model`, which the command line
    (exit 2), the registry and the deployment file share.
    """


class KeyPairError(ConfigurationError):
    """A signing key and certificate that cannot sign together; the message names the one to fix.

    Raised by the one key-pair loader, :meth:`wstrust_wsgi.keys.SigningKey.from_pem`,
    which the API and the deployment file share.
    """


class SecurityWarning(UserWarning):
    """A setting that is legal but weakens security (SHA-1 signatures, passwords over plain HTTP).

    Issued with :func:`warnings.warn` at construction, never at request time,
    so that the risk is seen once, where the setting is made.
    """


class RegistryError(WsTrustError):
    """A registry operation named an unknown user, role or relying party, or a duplicate one.

    The message is meant for the person at the command line.
    """


class MetadataError(WsTrustError):
    """A federation metadata document was refused: not signed by a pinned key, another entityID, no STS role.

    The message says which rule it broke and is meant for the operator's log;
    a relying party that refuses a refreshed document keeps its last good copy.
    """
