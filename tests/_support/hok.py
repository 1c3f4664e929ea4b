"""Holder-of-key, wired in-process: the STS with the echo service registered with its certificate,
the echo service decrypting proof keys with that certificate's key, and a client of both.

:func:`hok_world` builds them with the test's clock; the relying party's key pair is
written next to the STS's by :func:`rp_key_files` (once per session).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wstrust_wsgi import (MemoryUserStore, RelyingParty, RelyingPartyMiddleware, StsClient, TokenService,
                          WSGITransport, generate_demo_key_pair)
from demo_service.app import echo

from .apps import ISSUER, OTHER_URL, SERVICE_URL, STS_URL
from .clock import FixedClock
from .keys import KeyFiles

if TYPE_CHECKING:
    from .deployment import Gunicorn


def rp_key_files(directory: Path) -> KeyFiles:
    """The relying party's (the echo service's) key pair: it decrypts proof keys with it."""
    if not (directory / "rp.key").exists():
        generate_demo_key_pair("test rp", directory, "rp")
    return KeyFiles(directory / "rp.key", directory / "rp.crt")


@dataclass
class HokWorld:
    """The STS, the echo service behind the middleware, and a client factory, all in-process."""

    sts: TokenService
    service: RelyingPartyMiddleware
    rp: KeyFiles

    def caller(self, token: Any, address: str, message: str = "proven") -> str | None:
        """The caller the echo service names for a request with ``token`` (signed with its key), in-process."""
        from wstrust_wsgi import call_service
        from wstrust_wsgi.cli import ECHO_NS, echo_payload

        reply = call_service(address, token, echo_payload(message), transport=WSGITransport(self.service))
        return reply.findtext(f"{{{ECHO_NS}}}Caller")

    def client(self, **kwargs: Any) -> StsClient:
        kwargs.setdefault("transport", WSGITransport(self.sts))
        kwargs.setdefault("clock", self.sts._clock)
        return StsClient(STS_URL, username="admin", password="admin", **kwargs)


def hok_world(sts_keys: KeyFiles, rp: KeyFiles, users: MemoryUserStore, clock: FixedClock, app: Any = echo,
              encryption: str = "none", sts_options: dict[str, Any] | None = None, **middleware: Any) -> HokWorld:
    """SAML 2.0 for :data:`SERVICE_URL` and SAML 1.1 for :data:`OTHER_URL`, both with the rp certificate, which
    serves the proof keys; the tokens themselves are in clear unless ``encryption`` names an algorithm.
    ``sts_options``: more TokenService arguments (``issued_tokens=`` for Renew)."""
    cert = Path(rp.cert).read_bytes()
    sts = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=users, clock=clock, **(sts_options or {}),
                       relying_parties=[RelyingParty(SERVICE_URL, certificate_pem=cert, encryption=encryption),
                                        RelyingParty(OTHER_URL, token_type="1.1", certificate_pem=cert,
                                                     encryption=encryption)])
    middleware.setdefault("decryption_keys", [(rp.key, rp.cert)])
    service = RelyingPartyMiddleware(app, audience=[SERVICE_URL, OTHER_URL], issuer=ISSUER,
                                     trusted_certs=[sts_keys.cert], clock=clock, **middleware)
    return HokWorld(sts, service, rp)


def saml11_address(service_url: str) -> str:
    """The second relying party of the gunicorn deployment: the same service, registered for SAML 1.1 tokens."""
    return service_url + "/saml11"


def gunicorn_sts(keydir: str, service_url: str, tokens: str | None = None, encrypted: bool = False) -> TokenService:
    """The STS gunicorn serves in the deployment test: ``service_url`` registered with rp.crt, SAML 2.0, and
    :func:`saml11_address` of it, SAML 1.1; with ``tokens`` (a token store URL) it records what it issues, and
    renews (its tokens then in clear unless ``encrypted``: an encrypted token is renewed as sent, found by its
    digest)."""
    keys = Path(keydir)
    from wstrust_wsgi import SigningKey, User
    from wstrust_wsgi.stores.tokens import token_store_from_url
    return TokenService(issuer=ISSUER, signing_key=SigningKey.from_files(keys / "sts.key", keys / "sts.crt"),
                        users=MemoryUserStore([User("admin", "admin", roles=["admin"])]),
                        relying_parties=[RelyingParty(address, token_type=token_type,
                                                      certificate_pem=(keys / "rp.crt").read_bytes(),
                                                      **({"encryption": "none"} if tokens and not encrypted
                                                         else {}))
                                         for address, token_type in ((service_url, "2.0"),
                                                                     (saml11_address(service_url), "1.1"))],
                        issued_tokens=token_store_from_url(tokens) if tokens else None)


def gunicorn_service(keydir: str, service_url: str, tokens: str | None = None) -> RelyingPartyMiddleware:
    """The echo service gunicorn serves in the deployment test: holder-of-key only, proof keys read with rp.key;
    with ``tokens``, refusing the tokens that store says were renewed or cancelled."""
    keys = Path(keydir)
    from wstrust_wsgi.stores.tokens import token_store_from_url
    return RelyingPartyMiddleware(echo, audience=[service_url, saml11_address(service_url)], issuer=ISSUER, trusted_certs=[keys / "sts.crt"],
                                  decryption_keys=[(keys / "rp.key", keys / "rp.crt")], confirmation="holder-of-key",
                                  revocation_store=token_store_from_url(tokens) if tokens else None)


def unsigned_request(token: Any, directory: Path) -> Path:
    """Our service request for ``token`` with our proof signature taken out, written to a file, for another
    signer (WSS4J, xml-crypto) to sign again."""
    from lxml import etree

    from wstrust_wsgi import ns
    from wstrust_wsgi.client import service_request

    root = etree.fromstring(service_request(token, b"<Ping xmlns='urn:example'/>")[0])
    [ours] = [s for s in root.iter(f"{{{ns.DS}}}Signature") if s.get("Id")]
    ours.getparent().remove(ours)
    path = directory / "unsigned.xml"
    path.write_bytes(etree.tostring(root))
    return path


@dataclass
class HokServers:
    """:func:`gunicorn_sts` and :func:`gunicorn_service`, each a real gunicorn on loopback, and their keys."""

    keydir: Path
    sts_url: str
    service_url: str
    sts: Gunicorn
    service: Gunicorn


@contextmanager
def hok_servers(directory: Path, *, tokens: str | None = None, encrypted: bool = False,
                workers: int = 1) -> Iterator[HokServers]:
    """Fresh sts, rp and client key pairs in ``directory/keys``, then the STS and the holder-of-key-only echo
    service under gunicorn (logs ``sts.log`` and ``service.log`` in ``directory``), stopped on the way out.
    ``tokens`` and ``encrypted`` go to both apps as to :func:`gunicorn_sts` and :func:`gunicorn_service`."""
    from .deployment import Gunicorn
    from .net import free_port, wait_listening

    keydir = directory / "keys"
    keydir.mkdir()
    for stem in ("sts", "rp", "client"):
        generate_demo_key_pair(f"test {stem}", keydir, stem)
    sts_port, service_port = free_port(), free_port()
    service_url = f"http://127.0.0.1:{service_port}/soap"
    args = ("--pythonpath", str(Path(__file__).resolve().parent.parent), "--workers", str(workers))
    sts = Gunicorn(f"_support.hok:gunicorn_sts({str(keydir)!r}, {service_url!r}, {tokens!r}, {encrypted!r})",
                   port=sts_port, cwd=directory, log=directory / "sts.log", args=args)
    service = Gunicorn(f"_support.hok:gunicorn_service({str(keydir)!r}, {service_url!r}, {tokens!r})",
                       port=service_port, cwd=directory, log=directory / "service.log", args=args)
    try:
        for server in (sts, service):
            wait_listening(server.port, server.process, server.log)
        yield HokServers(keydir, f"http://127.0.0.1:{sts_port}/sts", service_url, sts, service)
    finally:
        for server in (sts, service):
            server.stop()
