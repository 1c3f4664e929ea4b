"""The ``client`` command: the WSO2 sample client's steps, as one command.

Request a token from the STS, print it (or, when the STS encrypted it for the
service, say so: its claims are not the client's to read), call the service
with it, print the reply: what WSO2's sample client does, so that a person can watch a token go
round without writing code. It is a thin shell over :class:`StsClient` and
:func:`call_service`; a refusal by either side is one line on stderr and exit
1, an unreachable peer exit 2, a bad option (an unreadable ``--payload`` or
``--cafile``) exit 2 before anything is sent.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from lxml import etree

from .. import _xml, exchange, ns
from ..client import StsClient, UrllibTransport, call_service
from ..errors import ConfigurationError, MalformedMessage, RemoteFault, TransportError
from ..keys import SigningKey
from ..model import TOKEN_TYPES
from . import lifecycle
from .output import answered
from .demo import DEMO_SERVICE, DEMO_STS, echo_payload


def _payload(path: str) -> etree._Element:
    """The ``--payload`` file's element, read and checked before anything is sent.

    A payload that cannot be sent is refused before the password prompt and the
    token request, so that no token is spent on a call that cannot be made.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"--payload {path}: cannot be read ({exc.strerror or exc})") from None
    try:
        element = _xml.parse(data)
    except MalformedMessage as exc:
        raise ConfigurationError(f"--payload {path}: not one well-formed XML element ({exc.detail})") from None
    if _xml.local_name(element) == "Envelope" and _xml.namespace(element) in (ns.SOAP11, ns.SOAP12):
        raise ConfigurationError(f"--payload {path}: holds a whole SOAP envelope; give only the element that "
                                 "goes in its Body (the command builds the envelope around it)")
    return element


def _not_an_sts(fault: RemoteFault) -> bool:
    """Whether a refusal of the RST reads like a service wanting a token, not like an STS.

    An STS refuses a UsernameToken with a WS-Trust fault (``wst:FailedAuthentication``);
    a service behind :class:`~wstrust_wsgi.RelyingPartyMiddleware` (or any
    service protected by issued tokens) answers a WS-Security fault that asks
    for the SAML assertion the request does not carry.
    """
    if not fault.code.startswith("{" + ns.WSSE + "}") or "UsernameToken" in fault.reason:
        return False
    return fault.local_code == "SecurityTokenUnavailable" or any(
        word in fault.reason.lower() for word in ("saml", "assertion", "issued token"))


def _delegation(args: argparse.Namespace) -> dict[str, Any]:
    """The ``request_token`` keyword the delegation options ask for: a token file's bytes, or a user and password.

    The represented user's password is never an option (a command line is
    visible to every user of the machine): ``$WSTRUST_ON_BEHALF_OF_PASSWORD``,
    else a prompt.
    """
    for option, keyword in (("on_behalf_of_token", "on_behalf_of"), ("act_as_token", "act_as")):
        path = getattr(args, option)
        if path:
            try:
                return {keyword: Path(path).read_bytes()}
            except OSError as exc:
                raise ConfigurationError(f"--{option.replace('_', '-')} {path}: cannot be read "
                                         f"({exc.strerror or exc})") from None
    if not args.on_behalf_of_user:
        return {}
    password = os.environ.get("WSTRUST_ON_BEHALF_OF_PASSWORD")
    if password is None:
        password = getpass.getpass(f"Password for {args.on_behalf_of_user} (on behalf of): ")
    return {"on_behalf_of": (args.on_behalf_of_user, password)}


def _client(args: argparse.Namespace) -> int:
    # What the options name is read first: a bad file is refused before the prompt and the token request.
    payload = _payload(args.payload) if args.payload else echo_payload(args.message)
    saved = lifecycle.saved_token(args)
    delegated = _delegation(args)
    transport = UrllibTransport(cafile=args.cafile)
    if args.key_type == "public" and not (args.client_key and args.client_cert):
        raise ConfigurationError("--key-type public: give --client-key and --client-cert (the key the token binds)")
    if bool(args.client_key) != bool(args.client_cert):
        raise ConfigurationError("give both --client-key and --client-cert, or neither")
    pair = SigningKey.from_files(args.client_key, args.client_cert) if args.client_key else None
    # The pair is the key a PublicKey token binds (a password still authenticates), else the requester's credential.
    client_key, client_cert = (pair, None) if args.key_type == "public" else (None, pair)
    password = None if client_cert else (args.password or os.environ.get("WSTRUST_PASSWORD"))
    if password is None and client_cert is None:
        password = getpass.getpass(f"Password for {args.username}: ")
    applies_to = args.applies_to or args.service
    represented = [value[1] for value in delegated.values() if isinstance(value, tuple)]  # masked like the password
    transport = exchange.transport_from_args(args, transport, secrets=[p for p in (password, *represented) if p])
    credentials: dict[str, Any] = ({"client_cert": client_cert} if client_cert is not None
                                   else {"username": args.username, "password": password, "digest": args.digest})
    client = StsClient(args.sts, soap_version=args.soap, trust_version=args.trust, transport=transport,
                       **credentials)
    try:
        token = saved or client.request_token(applies_to, token_type=args.token_type, key_type=args.key_type,
                                              entropy=args.entropy, client_key=client_key, **lifecycle.claims(args),
                                              use_key=args.use_key, **delegated)
    except RemoteFault as fault:
        hint = (f"; {args.sts} answers like a service protected by SAML tokens, not like an STS: "
                "give --sts the STS endpoint (--service is the protected service)") if _not_an_sts(fault) else ""
        print(f"The STS at {args.sts} refused the request: {fault.reason} ({fault.local_code}){hint}",
              file=sys.stderr)
        return 1
    except TransportError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if saved is None:
        valid = token.expires.isoformat() if token.expires else "unknown"
        proof = (f", holder-of-key ({len(token.proof_key) * 8}-bit proof key held, not shown)" if token.proof_key
                 else ", holder-of-key (your public key)" if token.key_type == "public" else "")
        if token.encrypted:  # ciphertext: printing it would show nothing, and the claims are not ours to read
            whom = f" ({token.encrypted_for})" if token.encrypted_for else ""
            print(f"Issued token ({token.token_type}), id {token.assertion_id}, valid until {valid}{proof}: "
                  f"encrypted for the service{whom}; only the service can read its claims, and it is passed on "
                  "unchanged.")
        else:
            print(f"Issued token ({token.token_type}), id {token.assertion_id}, valid until {valid}{proof}:")
            print(exchange.token_text_from_args(args, token.assertion))
    held = lifecycle.before_call(args, client, token)
    if isinstance(held, int):
        return held
    token = held
    if args.no_call:
        return lifecycle.after_call(args, client, token)
    reply = answered(lambda: call_service(args.service, token, payload, soap_version=args.soap, transport=transport,
                                          signature_algorithm=args.signature_algorithm),
                     f"The service at {args.service} refused the request")
    if isinstance(reply, int):
        return reply
    print(f"\nReply from {args.service}:")
    print(etree.tostring(reply, pretty_print=True).decode().rstrip())
    return lifecycle.after_call(args, client, token)


def add_client_command(commands: Any) -> None:
    """Register ``client`` on the subcommand group ``commands``."""
    client = commands.add_parser("client", help="request a token, print it, call the service with it")
    client.add_argument("--sts", default=DEMO_STS, help=f"STS endpoint (default {DEMO_STS})")
    client.add_argument("--service", default=DEMO_SERVICE, help=f"service to call (default {DEMO_SERVICE})")
    client.add_argument("--applies-to", help="wsp:AppliesTo address (default: the service URL)")
    client.add_argument("--username", default="admin")
    client.add_argument("--password", help="password (else $WSTRUST_PASSWORD, else a prompt)")
    client.add_argument("--digest", action="store_true", help="send PasswordDigest instead of PasswordText")
    client.add_argument("--soap", choices=["1.1", "1.2"], default="1.2")
    client.add_argument("--trust", choices=["1.3", "2005"], default="1.3")
    client.add_argument("--token-type", choices=TOKEN_TYPES, help="SAML version (default: the STS decides)")
    client.add_argument("--key-type", choices=["bearer", "symmetric", "public"], default="bearer",
                        help="bearer; symmetric or public: a holder-of-key token whose key signs the service call")
    client.add_argument("--client-key", help="the client's PEM private key: with --key-type public the key the "
                                             "token binds; otherwise it signs the request instead of a password")
    client.add_argument("--client-cert", help="the client's PEM certificate (see --client-key); without --key-type "
                                              "public it authenticates as the user it is registered to")
    client.add_argument("--use-key", choices=["certificate", "reference", "key-value"], default="certificate",
                        help="how a public-key request names the key: its certificate (default), a reference to it "
                             "as a BinarySecurityToken, or the bare key (ds:KeyValue)")
    client.add_argument("--entropy", choices=["both", "client", "sts"], default="both",
                        help="who makes a symmetric proof key (default both, by P_SHA1; sts: over TLS only)")
    client.add_argument("--signature-algorithm", choices=["hmac-sha256", "hmac-sha1"], default="hmac-sha256",
                        help="how a symmetric proof key signs (hmac-sha1 for WCF and AD FS peers)")
    client.add_argument("--message", default="Hello from wstrust-wsgi", help="text for the demo echo service")
    client.add_argument("--payload", help="file holding the SOAP Body child to send instead of the echo")
    client.add_argument("--no-call", action="store_true", help="only request and print the token")
    client.add_argument("--cafile", help="PEM certificate(s) to trust for HTTPS instead of the system store")
    represented = client.add_mutually_exclusive_group()
    represented.add_argument("--on-behalf-of-token", metavar="FILE",
                             help="ask on behalf of the identity in this saved SAML assertion (wst:OnBehalfOf)")
    represented.add_argument("--act-as-token", metavar="FILE",
                             help="ask for your own token acting as the identity in this assertion (wst14:ActAs)")
    represented.add_argument("--on-behalf-of-user", metavar="NAME", help="ask on behalf of this user (a "
                             "UsernameToken; password: $WSTRUST_ON_BEHALF_OF_PASSWORD, else a prompt)")
    lifecycle.add_arguments(client)
    exchange.add_arguments(client)
    client.set_defaults(run=_client)
