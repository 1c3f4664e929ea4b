"""WS-Security header processing: UsernameToken (text and digest), Timestamp, the Security header,
and the in-memory stores the STS checks them against (users, nonce replay cache)."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta, timezone

import pytest
from lxml import etree

from wstrust_wsgi import MemoryReplayCache, MemoryUserStore, User, ns, wssecurity
from wstrust_wsgi.errors import (
    ConfigurationError,
    FailedAuthentication,
    InvalidSecurity,
    MalformedMessage,
    MessageExpired,
    RequestFailed,
)

NOW = datetime(2026, 11, 26, 10, 0, 0, tzinfo=timezone.utc)
SKEW = timedelta(minutes=5)
NONCE = b"\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f\x10"
WSSE_DECL = f'xmlns:wsse="{ns.WSSE}" xmlns:wsu="{ns.WSU}"'


def q(namespace: str, local: str) -> str:
    return f"{{{namespace}}}{local}"


def security(inner: str) -> etree._Element:
    return etree.fromstring(f"<wsse:Security {WSSE_DECL}>{inner}</wsse:Security>")


def digest_of(nonce: bytes, created: str, password: str) -> str:
    return base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest()).decode()


def digest_token_xml(username: str, password: str, created: str, nonce: bytes = NONCE) -> str:
    return (
        f"<wsse:UsernameToken><wsse:Username>{username}</wsse:Username>"
        f'<wsse:Password Type="{ns.WSSE_PASSWORD_DIGEST}">{digest_of(nonce, created, password)}</wsse:Password>'
        f'<wsse:Nonce EncodingType="{ns.WSSE_BASE64}">{base64.b64encode(nonce).decode()}</wsse:Nonce>'
        f"<wsu:Created>{created}</wsu:Created></wsse:UsernameToken>"
    )


def text_token(username: str = "admin", password: str = "admin") -> wssecurity.UsernameToken:
    element = wssecurity.build_username_token(username, password, digest=False, now=NOW)
    token = wssecurity.read_username_token(wssecurity.security_element(ns.SOAP12, element))
    assert token is not None
    return token


def digest_token(username: str = "admin", password: str = "admin") -> wssecurity.UsernameToken:
    element = wssecurity.build_username_token(username, password, digest=True, now=NOW, nonce=NONCE)
    token = wssecurity.read_username_token(wssecurity.security_element(ns.SOAP12, element))
    assert token is not None
    return token


# ------------------------------------------------------------------ read_username_token


def test_password_text_token_is_read():
    token = wssecurity.read_username_token(security(
        "<wsse:UsernameToken><wsse:Username>admin</wsse:Username>"
        f'<wsse:Password Type="{ns.WSSE_PASSWORD_TEXT}">s3cret</wsse:Password></wsse:UsernameToken>'
    ))
    assert token is not None
    assert (token.username, token.password, token.digest) == ("admin", "s3cret", False)
    assert token.nonce is None and token.created is None and token.created_text is None


def test_password_without_type_is_password_text():
    token = wssecurity.read_username_token(security(
        "<wsse:UsernameToken><wsse:Username>admin</wsse:Username>"
        "<wsse:Password>s3cret</wsse:Password></wsse:UsernameToken>"
    ))
    assert token is not None and token.digest is False and token.password == "s3cret"


def test_password_digest_token_is_read_with_nonce_and_created():
    created = "2026-11-26T10:00:00.000Z"
    token = wssecurity.read_username_token(security(digest_token_xml("admin", "admin", created)))
    assert token is not None
    assert token.digest is True
    assert token.nonce == NONCE
    assert token.created_text == created
    assert token.created == NOW


def test_security_without_username_token_reads_none():
    assert wssecurity.read_username_token(security("")) is None


@pytest.mark.parametrize("inner", [
    "<wsse:Password>x</wsse:Password>",
    "<wsse:Username></wsse:Username><wsse:Password>x</wsse:Password>",
    "<wsse:Username>admin</wsse:Username>",
])
def test_username_token_without_username_or_password_is_failed_authentication(inner):
    with pytest.raises(FailedAuthentication):
        wssecurity.read_username_token(security(f"<wsse:UsernameToken>{inner}</wsse:UsernameToken>"))


def test_unknown_password_type_is_failed_authentication():
    with pytest.raises(FailedAuthentication):
        wssecurity.read_username_token(security(
            "<wsse:UsernameToken><wsse:Username>admin</wsse:Username>"
            '<wsse:Password Type="urn:example:PasswordHash">x</wsse:Password></wsse:UsernameToken>'
        ))


@pytest.mark.parametrize("missing", ["Nonce", "Created"])
def test_password_digest_without_nonce_or_created_is_failed_authentication(missing):
    root = security(digest_token_xml("admin", "admin", "2026-11-26T10:00:00Z"))
    token = root.find(q(ns.WSSE, "UsernameToken"))
    token.remove(token.find(q(ns.WSSE if missing == "Nonce" else ns.WSU, missing)))
    with pytest.raises(FailedAuthentication):
        wssecurity.read_username_token(root)


def test_nonce_that_is_not_base64_is_failed_authentication():
    root = security(digest_token_xml("admin", "admin", "2026-11-26T10:00:00Z"))
    root.find(f".//{q(ns.WSSE, 'Nonce')}").text = "not*base64!"
    with pytest.raises(FailedAuthentication):
        wssecurity.read_username_token(root)


def test_nonce_with_an_unknown_encoding_is_failed_authentication():
    root = security(digest_token_xml("admin", "admin", "2026-11-26T10:00:00Z"))
    root.find(f".//{q(ns.WSSE, 'Nonce')}").set("EncodingType", "urn:example:hex")
    with pytest.raises(FailedAuthentication):
        wssecurity.read_username_token(root)


def test_two_username_tokens_are_refused():
    one = digest_token_xml("admin", "admin", "2026-11-26T10:00:00Z")
    with pytest.raises(MalformedMessage):
        wssecurity.read_username_token(security(one + one))


@pytest.mark.parametrize(("created", "expected"), [
    ("2026-11-26T10:00:00Z", NOW),
    ("2026-11-26T10:00:00.123Z", NOW + timedelta(milliseconds=123)),
    ("2026-11-26T10:00:00.1234567Z", NOW + timedelta(microseconds=123456)),
    ("2026-11-26T10:00:00+00:00", NOW),
    ("2026-11-26T11:30:00+01:30", NOW),
    ("2026-11-26T05:00:00-05:00", NOW),
])
def test_created_formats_with_a_zone_are_accepted_and_digest_covers_the_text_as_sent(created, expected):
    token = wssecurity.read_username_token(security(digest_token_xml("admin", "admin", created)))
    assert token is not None
    assert token.created == expected
    assert token.created.utcoffset() == timedelta(0)
    assert token.created_text == created
    assert token.digest_matches("admin")


@pytest.mark.parametrize("created", ["2026-11-26T10:00:00", "2026-11-26T10:00:00.123", "26/11/2026 10:00", ""])
def test_created_without_a_zone_or_malformed_is_refused(created):
    with pytest.raises(FailedAuthentication):
        wssecurity.read_username_token(security(digest_token_xml("admin", "admin", created)))


@pytest.mark.parametrize("created", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00"])
def test_created_whose_utc_value_is_out_of_range_is_failed_authentication(created):
    """A well-formed time whose UTC conversion overflows is a bad token, not an internal error."""
    with pytest.raises(FailedAuthentication):
        wssecurity.read_username_token(security(digest_token_xml("admin", "admin", created)))


def test_created_on_a_text_token_is_read_too():
    token = wssecurity.read_username_token(security(
        "<wsse:UsernameToken><wsse:Username>admin</wsse:Username><wsse:Password>admin</wsse:Password>"
        "<wsu:Created>2026-11-26T10:00:00Z</wsu:Created></wsse:UsernameToken>"
    ))
    assert token is not None and token.digest is False and token.created == NOW


def test_password_text_is_kept_exactly_as_sent_including_surrounding_spaces():
    """xs:string: a password's leading and trailing spaces are part of it."""
    token = wssecurity.read_username_token(security(
        "<wsse:UsernameToken><wsse:Username>admin</wsse:Username>"
        "<wsse:Password>  pass phrase  </wsse:Password></wsse:UsernameToken>"
    ))
    assert token is not None
    assert token.password == "  pass phrase  "


def test_comment_inside_the_username_does_not_truncate_it():
    from wstrust_wsgi import _xml

    root = _xml.parse(
        f"<wsse:Security {WSSE_DECL}><wsse:UsernameToken><wsse:Username>ad<!---->min</wsse:Username>"
        "<wsse:Password>x</wsse:Password></wsse:UsernameToken></wsse:Security>".encode()
    )
    token = wssecurity.read_username_token(root)
    assert token is not None and token.username == "admin"


# ------------------------------------------------------------------ digest_matches


def test_digest_matches_the_right_secret_only():
    token = wssecurity.read_username_token(security(digest_token_xml("admin", "admin", "2026-11-26T10:00:00Z")))
    assert token is not None
    assert token.digest_matches("admin") is True
    assert token.digest_matches("Admin") is False
    assert token.digest_matches("") is False


def test_digest_over_a_different_created_text_does_not_match():
    root = security(digest_token_xml("admin", "admin", "2026-11-26T10:00:00Z"))
    # same instant, different characters: the digest covers the characters
    root.find(f".//{q(ns.WSU, 'Created')}").text = "2026-11-26T10:00:00.000Z"
    token = wssecurity.read_username_token(root)
    assert token is not None and token.digest_matches("admin") is False


def test_digest_over_a_different_nonce_does_not_match():
    root = security(digest_token_xml("admin", "admin", "2026-11-26T10:00:00Z"))
    root.find(f".//{q(ns.WSSE, 'Nonce')}").text = base64.b64encode(b"another nonce!!!").decode()
    token = wssecurity.read_username_token(root)
    assert token is not None and token.digest_matches("admin") is False


def test_digest_that_is_not_base64_does_not_match():
    root = security(digest_token_xml("admin", "admin", "2026-11-26T10:00:00Z"))
    root.find(f".//{q(ns.WSSE, 'Password')}").text = "%%%not-base64%%%"
    token = wssecurity.read_username_token(root)
    assert token is not None and token.digest_matches("admin") is False


def test_text_token_never_matches_as_a_digest():
    token = text_token()
    assert token.digest_matches("admin") is False
    # even when the "password" sent is the right digest value
    forged = wssecurity.UsernameToken("admin", digest_of(NONCE, "2026-11-26T10:00:00Z", "admin"), False,
                                      NONCE, "2026-11-26T10:00:00Z", NOW)
    assert forged.digest_matches("admin") is False


# ------------------------------------------------------------------ build_username_token


def test_built_digest_token_follows_the_profile_formula():
    element = wssecurity.build_username_token("admin", "admin", digest=True, now=NOW, nonce=NONCE)
    assert element.tag == q(ns.WSSE, "UsernameToken")
    password = element.find(q(ns.WSSE, "Password"))
    created = element.findtext(q(ns.WSU, "Created"))
    assert password.get("Type") == ns.WSSE_PASSWORD_DIGEST
    assert created == "2026-11-26T10:00:00.000Z"
    assert password.text == digest_of(NONCE, created, "admin")
    nonce = element.find(q(ns.WSSE, "Nonce"))
    assert nonce.get("EncodingType") == ns.WSSE_BASE64
    assert base64.b64decode(nonce.text) == NONCE


def test_built_digest_token_reads_back_and_matches():
    token = digest_token()
    assert token.digest and token.nonce == NONCE and token.created == NOW
    assert token.digest_matches("admin")


def test_built_digest_tokens_get_fresh_random_nonces():
    first = wssecurity.build_username_token("admin", "admin", digest=True, now=NOW)
    second = wssecurity.build_username_token("admin", "admin", digest=True, now=NOW)
    nonces = {e.findtext(q(ns.WSSE, "Nonce")) for e in (first, second)}
    assert len(nonces) == 2
    assert all(len(base64.b64decode(n)) >= 16 for n in nonces)


def test_built_text_token_carries_the_password_text_type():
    element = wssecurity.build_username_token("admin", "pw", digest=False, now=NOW)
    password = element.find(q(ns.WSSE, "Password"))
    assert password.get("Type") == ns.WSSE_PASSWORD_TEXT
    assert password.text == "pw"
    assert element.find(q(ns.WSSE, "Nonce")) is None
    assert text_token(password="pw").password == "pw"


# ------------------------------------------------------------------ Timestamp


def test_timestamp_is_read():
    stamp = wssecurity.read_timestamp(security(
        "<wsu:Timestamp><wsu:Created>2026-11-26T10:00:00.000Z</wsu:Created>"
        "<wsu:Expires>2026-11-26T10:05:00.1234567Z</wsu:Expires></wsu:Timestamp>"
    ))
    assert stamp is not None
    assert stamp.created == NOW
    assert stamp.expires == NOW + timedelta(minutes=5, microseconds=123456)


def test_timestamp_without_expires_is_read():
    stamp = wssecurity.read_timestamp(security(
        "<wsu:Timestamp><wsu:Created>2026-11-26T10:00:00+00:00</wsu:Created></wsu:Timestamp>"))
    assert stamp is not None and stamp.created == NOW and stamp.expires is None


def test_missing_timestamp_reads_none():
    assert wssecurity.read_timestamp(security("")) is None


@pytest.mark.parametrize("inner", [
    "<wsu:Created>2026-11-26T10:00:00</wsu:Created>",
    "<wsu:Created>yesterday</wsu:Created>",
    "<wsu:Expires>2026-11-26T10:05:00Z</wsu:Expires>",
    "<wsu:Created>2026-11-26T10:00:00Z</wsu:Created><wsu:Expires>2026-11-26T10:05:00</wsu:Expires>",
])
def test_timestamp_with_a_bad_or_missing_time_is_invalid_security(inner):
    with pytest.raises(InvalidSecurity):
        wssecurity.read_timestamp(security(f"<wsu:Timestamp>{inner}</wsu:Timestamp>"))


@pytest.mark.parametrize("inner", [
    "<wsu:Created>0001-01-01T00:00:00+01:00</wsu:Created>",
    "<wsu:Created>2026-11-26T10:00:00Z</wsu:Created><wsu:Expires>9999-12-31T23:59:59-05:00</wsu:Expires>",
], ids=["created-year-0", "expires-year-10000"])
def test_timestamp_whose_utc_value_is_out_of_range_is_invalid_security(inner):
    with pytest.raises(InvalidSecurity):
        wssecurity.read_timestamp(security(f"<wsu:Timestamp>{inner}</wsu:Timestamp>"))


def test_built_timestamp_reads_back():
    stamp = wssecurity.read_timestamp(wssecurity.security_element(ns.SOAP11, wssecurity.build_timestamp(NOW)))
    assert stamp == wssecurity.Timestamp(NOW, NOW + timedelta(minutes=5))


@pytest.mark.parametrize(("created", "expires"), [
    (NOW, NOW + timedelta(minutes=5)),
    (NOW + SKEW, NOW + timedelta(minutes=10)),  # Created in the future, within the skew
    (NOW - timedelta(minutes=10), NOW - SKEW + timedelta(seconds=1)),  # expired, within the skew
    (NOW - timedelta(hours=1), None),
])
def test_timestamp_inside_the_window_passes(created, expires):
    assert wssecurity.check_timestamp(wssecurity.Timestamp(created, expires), now=NOW, skew=SKEW) is None


@pytest.mark.parametrize(("created", "expires"), [
    (NOW + SKEW + timedelta(seconds=1), None),  # created in the future beyond the skew
    (NOW - timedelta(minutes=10), NOW - SKEW),  # expired exactly at the edge
    (NOW - timedelta(hours=1), NOW - timedelta(minutes=30)),
    (NOW, NOW - timedelta(minutes=1)),  # Expires precedes Created
])
def test_timestamp_outside_the_window_is_message_expired(created, expires):
    with pytest.raises(MessageExpired):
        wssecurity.check_timestamp(wssecurity.Timestamp(created, expires), now=NOW, skew=SKEW)


def test_timestamp_check_without_skew_is_exact():
    with pytest.raises(MessageExpired):
        wssecurity.check_timestamp(wssecurity.Timestamp(NOW + timedelta(seconds=1), None),
                                   now=NOW, skew=timedelta(0))


# ------------------------------------------------------------------ the Security header


def headers_of(xml: str, soap_ns: str = ns.SOAP12) -> list[etree._Element]:
    header = etree.fromstring(f'<s:Header xmlns:s="{soap_ns}" {WSSE_DECL}>{xml}</s:Header>')
    return [h for h in header if isinstance(h.tag, str)]


def test_single_security_header_is_found():
    headers = headers_of('<wsa:To xmlns:wsa="http://www.w3.org/2005/08/addressing">x</wsa:To>'
                        '<wsse:Security s:mustUnderstand="1"/>')
    found = wssecurity.security_header(headers, ns.SOAP12)
    assert found is headers[1]


def test_no_security_header_is_none():
    assert wssecurity.security_header(headers_of("<other xmlns='urn:x'/>"), ns.SOAP12) is None
    assert wssecurity.security_header([], ns.SOAP11) is None


@pytest.mark.parametrize("soap_ns", [ns.SOAP11, ns.SOAP12])
def test_two_security_headers_are_invalid_security(soap_ns):
    headers = headers_of("<wsse:Security><a/></wsse:Security><wsse:Security><b/></wsse:Security>", soap_ns)
    with pytest.raises(InvalidSecurity):
        wssecurity.security_header(headers, soap_ns)


def test_security_header_for_another_soap11_actor_is_ignored():
    headers = headers_of('<wsse:Security s:actor="http://example.org/proxy"><a/></wsse:Security>'
                         "<wsse:Security><b/></wsse:Security>", ns.SOAP11)
    found = wssecurity.security_header(headers, ns.SOAP11)
    assert found is headers[1]


def test_security_header_for_another_soap12_role_is_ignored():
    headers = headers_of('<wsse:Security s:role="http://example.org/proxy"><a/></wsse:Security>', ns.SOAP12)
    assert wssecurity.security_header(headers, ns.SOAP12) is None


def test_security_header_for_the_ultimate_receiver_role_is_used():
    role = "http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver"
    headers = headers_of(f'<wsse:Security s:role="{role}"><a/></wsse:Security>', ns.SOAP12)
    assert wssecurity.security_header(headers, ns.SOAP12) is headers[0]


@pytest.mark.parametrize(("soap_ns", "attribute", "next_uri"), [
    (ns.SOAP11, "actor", "http://schemas.xmlsoap.org/soap/actor/next"),
    (ns.SOAP12, "role", "http://www.w3.org/2003/05/soap-envelope/role/next"),
], ids=["soap11-actor-next", "soap12-role-next"])
def test_security_header_for_the_next_role_is_used(soap_ns, attribute, next_uri):
    """SOAP 1.1 s4.2.2 / SOAP 1.2 part 1 s2.2: the ultimate receiver acts in the "next" role too."""
    headers = headers_of(f'<wsse:Security s:{attribute}="{next_uri}"><a/></wsse:Security>', soap_ns)
    assert wssecurity.security_header(headers, soap_ns) is headers[0]


def test_security_header_in_another_namespace_is_not_taken():
    headers = headers_of('<x:Security xmlns:x="http://docs.oasis-open.org/wss/2004/01/other"/>')
    assert wssecurity.security_header(headers, ns.SOAP12) is None


def test_security_element_sets_must_understand_for_the_given_soap_version():
    element = wssecurity.security_element(ns.SOAP11)
    assert element.get(q(ns.SOAP11, "mustUnderstand")) == "1"
    assert wssecurity.security_element(ns.SOAP12, must_understand=False).get(q(ns.SOAP12, "mustUnderstand")) is None


# ------------------------------------------------------------------ MemoryReplayCache


def test_replay_cache_accepts_a_new_key_and_refuses_its_replay():
    cache = MemoryReplayCache()
    assert cache.add("n1", expires=NOW + timedelta(minutes=5), now=NOW) is True
    assert cache.add("n1", expires=NOW + timedelta(minutes=5), now=NOW + timedelta(minutes=1)) is False
    assert cache.add("n2", expires=NOW + timedelta(minutes=5), now=NOW) is True


def test_replay_cache_forgets_a_key_once_it_expired():
    cache = MemoryReplayCache()
    assert cache.add("n1", expires=NOW + timedelta(minutes=5), now=NOW)
    assert cache.add("n1", expires=NOW + timedelta(minutes=5), now=NOW + timedelta(minutes=4, seconds=59)) is False
    assert cache.add("n1", expires=NOW + timedelta(minutes=15), now=NOW + timedelta(minutes=5)) is True
    assert cache.add("n1", expires=NOW + timedelta(minutes=15), now=NOW + timedelta(minutes=6)) is False


def test_full_replay_cache_refuses_rather_than_forgetting_live_entries():
    cache = MemoryReplayCache(max_entries=3)
    for key in ("a", "b", "c"):
        assert cache.add(key, expires=NOW + timedelta(minutes=5), now=NOW)
    with pytest.raises(RequestFailed):
        cache.add("d", expires=NOW + timedelta(minutes=5), now=NOW)
    # the live entries are still remembered
    assert cache.add("a", expires=NOW + timedelta(minutes=5), now=NOW) is False


def test_full_replay_cache_makes_room_by_dropping_expired_entries():
    cache = MemoryReplayCache(max_entries=2)
    assert cache.add("old", expires=NOW + timedelta(minutes=1), now=NOW)
    assert cache.add("live", expires=NOW + timedelta(minutes=10), now=NOW)
    later = NOW + timedelta(minutes=2)
    assert cache.add("new", expires=later + timedelta(minutes=5), now=later) is True
    assert cache.add("live", expires=later + timedelta(minutes=5), now=later) is False


# ------------------------------------------------------------------ MemoryUserStore


@pytest.fixture(scope="module")
def store() -> MemoryUserStore:
    return MemoryUserStore([
        User("admin", "admin", roles=["admin"], claims={"urn:claim:mail": ["admin@example.org"]}),
        User("textonly", "secret", roles=["admin"], digest_secret=False),
        User("spaced", "  pass phrase  ", roles=["admin"]),
    ])


def test_user_store_right_text_password_gives_the_principal(store):
    principal = store.authenticate(text_token("admin", "admin"))
    assert principal is not None
    assert principal.name == "admin"
    assert principal.roles == frozenset({"admin"})
    assert principal.claims == {"urn:claim:mail": ("admin@example.org",)}


@pytest.mark.parametrize("password", ["wrong", "Admin", "admin ", ""])
def test_user_store_wrong_text_password_gives_none(store, password):
    token = wssecurity.UsernameToken("admin", password, False, None, None, None)
    assert store.authenticate(token) is None


def test_user_store_unknown_user_gives_none(store):
    assert store.authenticate(text_token("nobody", "admin")) is None
    assert store.authenticate(digest_token("nobody", "admin")) is None


def test_user_store_right_digest_gives_the_principal(store):
    principal = store.authenticate(digest_token("admin", "admin"))
    assert principal is not None and principal.name == "admin"


def test_user_store_wrong_digest_gives_none(store):
    assert store.authenticate(digest_token("admin", "wrong")) is None


def test_user_store_refuses_digest_for_a_user_without_a_digest_secret(store):
    assert store.authenticate(text_token("textonly", "secret")) is not None
    assert store.authenticate(digest_token("textonly", "secret")) is None


def test_user_store_matches_a_password_with_surrounding_spaces_exactly(store):
    assert store.authenticate(wssecurity.UsernameToken("spaced", "  pass phrase  ", False, None, None, None))
    assert store.authenticate(wssecurity.UsernameToken("spaced", "pass phrase", False, None, None, None)) is None


def test_user_store_password_with_spaces_works_through_the_wire_format(store):
    element = wssecurity.build_username_token("spaced", "  pass phrase  ", digest=False, now=NOW)
    token = wssecurity.read_username_token(wssecurity.security_element(ns.SOAP12, element))
    assert token is not None
    assert store.authenticate(token) is not None


def test_user_store_refuses_a_duplicated_user_name():
    with pytest.raises(ConfigurationError):
        MemoryUserStore([User("a", "x"), User("a", "y")])
