"""Target 3h of ``bench/bench.py``: a holder-of-key request beside the bearer ones.

A symmetric holder-of-key request costs the middleware what a bearer one does
(parse, verify the token's RSA signature, or find it in the cache) plus the
proof: unwrapping the proof key (RSA-2048 OAEP decryption, per request) and the
HMAC-SHA256 signature over Body and Timestamp with a second parse of the
message. Measured first-seen (no verification cache) and with the token seen
before, each beside the bearer request of the same kind; the ratio is to the
bearer path. No target: the figures say what holder-of-key costs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench import (CERTS, ISSUER, SERVICE_PATH, SERVICE_URL, USERS, Capture, call, environ_for, interleaved,
                   make_protected, ok_app, show)
from wstrust_wsgi import MemoryUserStore, RelyingParty, SigningKey, StsClient, TokenService
from wstrust_wsgi.client import call_service


def _request(token: Any, payload: bytes) -> tuple[bytes, dict[str, str]]:
    capture = Capture(make_protected(ok_app, decryption_keys=[(CERTS / "service.key", CERTS / "service.crt")]))
    try:
        call_service(SERVICE_URL, token, payload, transport=capture)
    except Exception:
        pass  # ok_app answers no SOAP; the request is what we wanted
    return capture.sent[-1]


def target3h(ctx: dict[str, Any], rounds: int, seconds: float) -> list[str]:
    sts = TokenService(issuer=ISSUER, signing_key=SigningKey.from_files(CERTS / "sts.key", CERTS / "sts.crt"),
                       users=MemoryUserStore(USERS),
                       relying_parties=[RelyingParty(SERVICE_URL, certificate_pem=(CERTS / "service.crt").read_bytes(),
                                                     encryption="none")])  # the proof key only: token in clear
    client = StsClient(ISSUER, username="admin", password="admin", soap_version="1.1", transport=Capture(sts))
    hok_body, hok_headers = _request(client.request_token(SERVICE_URL, key_type="symmetric"), ctx["payload"])
    body, headers = ctx["service"]
    keys = [(CERTS / "service.key", CERTS / "service.crt")]

    def app(cache: int) -> Any:
        return make_protected(ok_app, verified_cache_size=cache, decryption_keys=keys)

    contenders: dict[str, Callable[[], object]] = {
        "bearer, first-seen token": call(app(0), environ_for(body, headers, SERVICE_PATH)),
        "holder-of-key, first-seen token": call(app(0), environ_for(hok_body, hok_headers, SERVICE_PATH)),
        "bearer, token seen before": call(app(10), environ_for(body, headers, SERVICE_PATH)),
        "holder-of-key, token seen before": call(app(10), environ_for(hok_body, hok_headers, SERVICE_PATH)),
    }
    rates = interleaved(contenders, rounds, seconds)
    show("3h. Middleware validation of a symmetric holder-of-key request (proof key unwrapped, HMAC checked)", rates)
    first = rates["holder-of-key, first-seen token"] / rates["bearer, first-seen token"]
    seen = rates["holder-of-key, token seen before"] / rates["bearer, token seen before"]
    line = (f"  3h (holder-of-key request): first-seen {rates['holder-of-key, first-seen token']:.0f}/s = "
            f"{first:.2f} x bearer; token seen before {rates['holder-of-key, token seen before']:.0f}/s = "
            f"{seen:.2f} x bearer")
    print(line)
    return [line]
