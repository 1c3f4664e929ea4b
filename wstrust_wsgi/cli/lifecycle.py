"""The ``client`` command's Validate, Renew and Cancel steps (``--validate``, ``--renew``, ``--cancel``, ``--token``),
and the claims it asks for at issue (``--claim``).

In order: the token (requested, or read from ``--token FILE``, an assertion
saved earlier), ``--validate`` (print the STS's status), ``--renew`` (print the
new token, which the service call then uses), the service call, ``--cancel``
(the token last held). A refusal is one line on stderr and exit 1, as for Issue.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .. import exchange
from ..client import IssuedToken, StsClient
from ..errors import ConfigurationError
from .output import answered

T = TypeVar("T")


def add_arguments(parser: Any) -> None:
    parser.add_argument("--claim", action="append", metavar="URI",
                        help="ask for this claim (repeatable; required unless it ends with '?'); "
                             "only these are released")
    parser.add_argument("--claims-dialect", default="http://schemas.xmlsoap.org/ws/2005/05/identity",
                        help="the wst:Claims Dialect (default: the identity dialect; WSO2's: http://wso2.org/claims)")
    parser.add_argument("--token", metavar="FILE", help="use the assertion saved in FILE instead of requesting one")
    parser.add_argument("--validate", action="store_true", help="ask the STS whether the token is valid")
    parser.add_argument("--renew", action="store_true", help="renew the token and use the new one")
    parser.add_argument("--cancel", action="store_true", help="cancel the token at the STS after the call")


def claims(args: argparse.Namespace) -> dict[str, Any]:
    """The ``request_token`` keywords ``--claim`` asks for (none without it)."""
    if not args.claim:
        return {}
    wanted = [(uri[:-1], True) if uri.endswith("?") else (uri, False) for uri in args.claim]
    return {"claims": wanted, "claims_dialect": args.claims_dialect}


def saved_token(args: argparse.Namespace) -> IssuedToken | None:
    """The ``--token`` file's assertion, read before anything is sent; None without the option."""
    if not args.token:
        return None
    try:
        data = Path(args.token).read_bytes().strip()
    except OSError as exc:
        raise ConfigurationError(f"--token {args.token}: cannot be read ({exc.strerror or exc})") from None
    return IssuedToken(data, "", "", None, None, None)


def _ask(args: argparse.Namespace, step: str, call: Callable[[], T]) -> T | int:
    return answered(call, f"The STS at {args.sts} refused to {step} the token")


def before_call(args: argparse.Namespace, client: StsClient, token: IssuedToken) -> IssuedToken | int:
    """``--validate`` then ``--renew``: the token to call the service with, or an exit code."""
    if args.validate:
        status = _ask(args, "validate", lambda: client.validate(token))
        if isinstance(status, int):
            return status
        print(f"Validate: {'valid' if status.valid else 'INVALID'} ({status.reason})")
    if args.renew:
        renewed = _ask(args, "renew", lambda: client.renew(token))
        if isinstance(renewed, int):
            return renewed
        token = renewed
        print(f"Renewed token ({token.token_type}), id {token.assertion_id}, valid until "
              f"{token.expires.isoformat() if token.expires else 'unknown'}:")
        print(exchange.token_text_from_args(args, token.assertion))
    return token


def after_call(args: argparse.Namespace, client: StsClient, token: IssuedToken) -> int:
    """``--cancel``: 0 when cancelled (or not asked), else the exit code."""
    if not args.cancel:
        return 0
    done = _ask(args, "cancel", lambda: client.cancel(token))
    if isinstance(done, int):
        return done
    print(f"Cancelled token {token.assertion_id or '(from ' + str(args.token) + ')'} at the STS.")
    return 0
