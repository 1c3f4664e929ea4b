"""``TokenService(default_applies_to=)``: the relying party of an Issue request that names none.

WS-Trust 1.3 section 4.1 makes ``wsp:AppliesTo`` optional; pyVmomi (and
vCenter's other clients) never send it. Off by default (refused as before);
when set, the request is judged as one naming that party, rules and all.
"""

from __future__ import annotations

import pytest
from lxml import etree

from _support import OTHER_URL, SERVICE_URL, STS_URL, FixedClock, KeyFiles
from _support.apps import ISSUER
from wstrust_wsgi import MemoryUserStore, RelyingParty, StsClient, TokenService, WSGITransport, ns
from wstrust_wsgi.client import parse_response
from wstrust_wsgi.errors import ConfigurationError, RemoteFault


def without_applies_to(app: TokenService, clock: FixedClock, username: str = "admin"):  # type: ignore[no-untyped-def]
    """The RST our client builds with its AppliesTo taken out, sent in-process; the RSTR read."""
    client = StsClient(STS_URL, username=username, password=username, transport=WSGITransport(app), clock=clock)
    envelope = etree.fromstring(client.build_request(SERVICE_URL))
    [applies] = envelope.iter(f"{{{ns.WSP12}}}AppliesTo")
    applies.getparent().remove(applies)
    status, _, body = WSGITransport(app)(STS_URL, etree.tostring(envelope), {
        "Content-Type": f'application/soap+xml; charset=utf-8; action="{client.dialect.issue_action}"'})
    return parse_response(body, status=status)


def sts(keys: KeyFiles, clock: FixedClock, users: MemoryUserStore, **options) -> TokenService:  # type: ignore[no-untyped-def]
    return TokenService(issuer=ISSUER, signing_key=keys.load(), users=users, clock=clock,
                        relying_parties=[RelyingParty(SERVICE_URL)], **options)


def test_off_by_default_then_the_named_party(sts_keys, clock, users):  # type: ignore[no-untyped-def]
    with pytest.raises(RemoteFault) as refused:
        without_applies_to(sts(sts_keys, clock, users), clock)
    assert refused.value.local_code == "InvalidRequest" and "AppliesTo" in refused.value.reason
    token = without_applies_to(sts(sts_keys, clock, users, default_applies_to=SERVICE_URL), clock)
    audience = etree.fromstring(token.assertion).findtext(f".//{{{ns.SAML2}}}Audience")
    assert audience == SERVICE_URL


def test_the_default_party_is_judged_like_any_other(sts_keys, clock, users):  # type: ignore[no-untyped-def]
    with pytest.raises(RemoteFault) as unknown:  # not registered: as if the request had named it
        without_applies_to(sts(sts_keys, clock, users, default_applies_to=OTHER_URL), clock)
    assert "not a registered relying party" in unknown.value.reason
    with pytest.raises(RemoteFault) as no_role:  # alice lacks the role the STS asks of every requester
        without_applies_to(sts(sts_keys, clock, users, default_applies_to=SERVICE_URL), clock, "alice")
    assert no_role.value.local_code == "RequestFailed"
    with pytest.raises(ConfigurationError, match="default_applies_to"):
        sts(sts_keys, clock, users, default_applies_to=42)
