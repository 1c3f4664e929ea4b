"""The LDAP user store against a real OpenLDAP slapd (tests/_support/slapd.py), alone and behind the STS.

slapd's own ``stats`` log shows what reached the directory (which filters,
which binds, how many connections), so the tests check the wire, not mocks.
Outages are real too: a stopped slapd, a closed port, a loopback server that
accepts TCP and never answers, one that answers something that is not LDAP.
Every call that could hang runs in a thread joined with a generous bound.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ldap3.utils.dn import parse_dn
from lxml import etree

from _support import EMAIL, ISSUER, SERVICE_URL, STS_URL, FixedClock, KeyFiles
from _support.slapd import (
    GROUPS,
    PASSWORDS,
    PEOPLE,
    READER_DN,
    READER_PASSWORD,
    Slapd,
    SlapdError,
    free_port,
    write_certificates,
)
from wstrust_wsgi import ConfigurationError, RelyingParty, RemoteFault, StsClient, TokenService, WSGITransport, ns
from wstrust_wsgi import saml
from wstrust_wsgi.errors import RequestFailed
from wstrust_wsgi.stores import Principal
from wstrust_wsgi.stores.ldap import LdapUserStore
from wstrust_wsgi.wssecurity import UsernameToken

LOGGER = "wstrust_wsgi.ldap"
DISPLAY_NAME = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
UNAVAILABLE = "The user directory is unavailable."
#: Upper bound for any call against a broken directory; the timeouts configured are 1 s.
HANG_LIMIT = 20.0


# ------------------------------------------------------------------ fixtures and helpers


def start_slapd(workdir: Path) -> Slapd:
    try:
        server = Slapd(workdir)
        server.start()
    except SlapdError as exc:
        pytest.fail(f"cannot run the test directory: {exc}")
    return server


@pytest.fixture(scope="session")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """One slapd for the session; tests that stop a directory use their own."""
    server = start_slapd(tmp_path_factory.mktemp("slapd"))
    yield server
    server.cleanup()


def options(server: Slapd, **overrides: Any) -> dict[str, Any]:
    """A search-account store for ``server``, 1 s timeouts."""
    base: dict[str, Any] = dict(
        urls=server.url,
        bind_dn=READER_DN,
        bind_password=READER_PASSWORD,
        user_search_base=PEOPLE,
        group_search_base=GROUPS,
        group_to_role={"sts-admins": "admin", "staff": "staff"},
        attribute_to_claim={"mail": EMAIL, "displayName": DISPLAY_NAME},
        connect_timeout=1,
        receive_timeout=1,
    )
    base.update(overrides)
    return base


_OPEN_STORES: list[LdapUserStore] = []


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    """Close every store a test made, so its pooled connections do not outlive the test."""
    yield
    while _OPEN_STORES:
        _OPEN_STORES.pop().close()


def make_store(server: Slapd, **overrides: Any) -> LdapUserStore:
    store = LdapUserStore(**options(server, **overrides))
    _OPEN_STORES.append(store)
    return store


def text_token(username: str, password: str) -> UsernameToken:
    return UsernameToken(username, password, False, None, None, None)


def digest_token(username: str, password: str) -> UsernameToken:
    nonce, created = os.urandom(16), "2026-01-01T00:00:00Z"
    digest = base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest()).decode()
    return UsernameToken(username, digest, True, nonce, created, None)


def ldap_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def bounded(call: Callable[[], Any], limit: float = HANG_LIMIT) -> dict[str, Any]:
    """Run ``call`` in a thread; fail if it has not returned within ``limit`` seconds."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"the call did not return within {limit} s"
    return outcome


def binds(log: str) -> list[str]:
    """The DNs slapd saw bind, in order."""
    return re.findall(r'BIND dn="([^"]*)" method=', log)


def filters(log: str) -> list[str]:
    return re.findall(r'SRCH base="[^"]*" scope=\d deref=\d filter="([^"]*)"', log)


def accepted(log: str) -> int:
    return len(re.findall(r" ACCEPT from ", log))


class LoopbackServer:
    """A TCP server on 127.0.0.1 that is not an LDAP directory.

    ``mode="silent"`` accepts connections and never sends a byte;
    ``mode="garbage"`` answers every connection with an HTTP error and closes;
    ``mode="tls"`` completes a TLS handshake with ``context`` and then stays silent.
    The accept loop wakes every 0.1 s to see whether to stop; :meth:`close`
    joins it (bounded) and closes every socket.
    """

    def __init__(self, mode: str, context: ssl.SSLContext | None = None) -> None:
        self.mode = mode
        self.context = context
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self.port = int(self._listener.getsockname()[1])
        self.connections = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                peer, _ = self._listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            self.connections += 1
            if self.mode == "garbage":
                with peer:
                    peer.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                continue
            if self.mode == "tls" and self.context is not None:
                peer.settimeout(2)
                try:
                    peer = self.context.wrap_socket(peer, server_side=True)
                except (ssl.SSLError, OSError):
                    peer.close()  # the client refused our certificate
                    continue
            self._held.append(peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()
        for peer in self._held:
            peer.close()

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# ------------------------------------------------------------------ authentication


def test_good_password_gives_the_principal_with_roles_from_groups_and_claims_from_attributes(directory, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    store = make_store(directory)
    admin = store.authenticate(text_token("admin", PASSWORDS["admin"]))
    assert admin == Principal(
        "admin", frozenset({"admin"}),
        {EMAIL: ("admin@example.org",), DISPLAY_NAME: ("Admin Example",)},
    )
    alice = store.authenticate(text_token("alice", PASSWORDS["alice"]))
    assert alice is not None
    assert alice.roles == frozenset({"staff"})
    assert alice.claims[EMAIL] == ("alice@example.org",)
    assert any("authenticated 'admin'" in m and "sts-admins" in m for m in ldap_messages(caplog))


def test_groups_not_in_group_to_role_give_no_role(directory):
    store = make_store(directory, group_to_role={"sts-admins": "admin"})
    alice = store.authenticate(text_token("alice", PASSWORDS["alice"]))
    assert alice is not None and alice.roles == frozenset()


@pytest.mark.parametrize("store_kind", ["search", "template"])
@pytest.mark.parametrize("spelling", ["ADMIN", " admin ", "Admin"])
def test_the_name_is_spelled_as_the_directory_spells_it(directory, store_kind, spelling):
    # uid's matching rule ignores case and surrounding spaces (RFC 4518): the directory
    # finds admin, and the token must carry the directory's spelling, not the caller's.
    store = make_store(directory) if store_kind == "search" else template_store(directory)
    principal = store.authenticate(text_token(spelling, PASSWORDS["admin"]))
    assert principal is not None and principal.name == "admin"


def test_without_name_attribute_the_name_is_as_sent(directory):
    as_sent = make_store(directory, name_attribute=None).authenticate(text_token("ADMIN", PASSWORDS["admin"]))
    assert as_sent is not None and as_sent.name == "ADMIN"


def test_wrong_password_is_refused_and_the_reason_logged(directory, caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    assert make_store(directory).authenticate(text_token("admin", "not-the-password")) is None
    assert any("refused 'admin'" in m and "wrong password" in m for m in ldap_messages(caplog))
    assert "not-the-password" not in caplog.text


def test_a_password_of_another_user_is_refused(directory):
    assert make_store(directory).authenticate(text_token("admin", PASSWORDS["alice"])) is None


def test_unknown_user_is_refused_logged_and_costs_a_bind_like_a_wrong_password(directory, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    mark = directory.log_mark()
    assert make_store(directory).authenticate(text_token("mallory", "whatever")) is None
    assert any("refused 'mallory'" in m and "no entry matches" in m for m in ldap_messages(caplog))
    # One bind, as a wrong password costs, to a DN that does not exist (and without the caller's password).
    seen = binds(directory.log_since(mark))
    assert [dn for dn in seen if dn.startswith("cn=no-such-user-")], seen
    assert "whatever" not in directory.log_since(mark)


def test_empty_password_is_refused_without_any_bind(directory, caplog):
    # This directory, like Active Directory, accepts an unauthenticated bind: a DN and an empty password.
    ldapwhoami = shutil.which("ldapwhoami")
    assert ldapwhoami, "ldapwhoami is missing (Debian package ldap-utils)"
    proof = subprocess.run([ldapwhoami, "-x", "-H", directory.url, "-D", f"uid=admin,{PEOPLE}", "-w", ""],
                           capture_output=True, text=True, timeout=10)
    assert proof.returncode == 0 and "anonymous" in proof.stdout, proof

    caplog.set_level(logging.INFO, logger=LOGGER)
    mark = directory.log_mark()
    for store in (make_store(directory), make_store(directory, bind_dn=None, bind_password=None, user_search_base=None,
                                                    user_dn_template=f"uid={{username}},{PEOPLE}")):
        assert store.authenticate(text_token("admin", "")) is None
    assert binds(directory.log_since(mark)) == []
    assert any("empty password" in m for m in ldap_messages(caplog))


def test_a_password_of_spaces_is_a_password_and_is_checked(directory):
    assert make_store(directory).authenticate(text_token("admin", "   ")) is None


def test_password_digest_is_refused_and_the_reason_logged(directory, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    mark = directory.log_mark()
    assert make_store(directory).authenticate(digest_token("admin", PASSWORDS["admin"])) is None
    assert any("PasswordDigest" in m for m in ldap_messages(caplog))
    assert binds(directory.log_since(mark)) == []


# ------------------------------------------------------------------ injection


@pytest.mark.parametrize(("username", "password"), [
    ("*", PASSWORDS["admin"]),             # unescaped: every user; the only one with this password binds
    ("adm*", PASSWORDS["admin"]),          # unescaped: exactly admin
    ("a*n", PASSWORDS["admin"]),
    ("sta*", PASSWORDS["star*"]),          # unescaped: exactly the entry uid=star*
    ("admin)(uid=*", PASSWORDS["admin"]),
    ("*)(uid=*))(|(uid=*", PASSWORDS["admin"]),
    ("admin)(|(objectClass=*", PASSWORDS["admin"]),
    ("\\2a", PASSWORDS["admin"]),          # an escape sequence typed in: matched as the text backslash-2-a
    ("admin\x00", PASSWORDS["admin"]),
])
def test_filter_metacharacters_in_a_username_match_nobody_else(directory, username, password):
    mark = directory.log_mark()
    assert make_store(directory).authenticate(text_token(username, password)) is None
    sent = filters(directory.log_since(mark))
    assert sent and all("*" not in f for f in sent[:1]), sent  # the user search carries no wildcard
    assert f"uid=admin,{PEOPLE}" not in binds(directory.log_since(mark))


def test_a_wildcard_in_a_filter_template_around_the_name_stays_literal(directory):
    store = make_store(directory, user_filter="(&(objectClass=inetOrgPerson)(uid={username}))")
    assert store.authenticate(text_token("admin)(uid=*", PASSWORDS["admin"])) is None
    assert store.authenticate(text_token("admin", PASSWORDS["admin"])) is not None


def test_a_name_holding_a_star_is_matched_literally(directory):
    # The escaped filter (uid=star\2a) finds the one entry whose uid really is "star*".
    principal = make_store(directory).authenticate(text_token("star*", PASSWORDS["star*"]))
    assert principal is not None and principal.name == "star*"
    assert principal.roles == frozenset()


def test_a_name_matching_several_entries_is_refused(directory, caplog):
    # A deliberately loose filter: both "admin" and "alice" match (mail=a*), so no one is chosen.
    caplog.set_level(logging.INFO, logger=LOGGER)
    store = make_store(directory, user_filter="(|(uid={username})(mail=a*))")
    assert store.authenticate(text_token("admin", PASSWORDS["admin"])) is None
    assert any("more than one entry" in m for m in ldap_messages(caplog))


# ------------------------------------------------------------------ direct bind (DN template)


def template_store(server: Slapd, **overrides: Any) -> LdapUserStore:
    return make_store(server, **{"bind_dn": None, "bind_password": None, "user_search_base": None,
                                 "user_dn_template": f"uid={{username}},{PEOPLE}", **overrides})


def test_template_store_binds_directly_and_reads_groups_and_claims_as_the_user(directory):
    mark = directory.log_mark()
    principal = template_store(directory).authenticate(text_token("admin", PASSWORDS["admin"]))
    assert principal == Principal(
        "admin", frozenset({"admin"}), {EMAIL: ("admin@example.org",), DISPLAY_NAME: ("Admin Example",)}
    )
    assert binds(directory.log_since(mark)) == [f"uid=admin,{PEOPLE}"]  # no search account


def test_template_store_refuses_a_wrong_password_and_an_unknown_user(directory, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    store = template_store(directory)
    assert store.authenticate(text_token("admin", "nope")) is None
    assert store.authenticate(text_token("mallory", "nope")) is None
    assert sum("wrong password or unknown user" in m for m in ldap_messages(caplog)) == 2


@pytest.mark.parametrize("username", ["admin,ou=people", "admin+cn=x", "*", "=admin", "admin\\", "#61646d696e"])
def test_template_store_escapes_the_name_as_one_rdn_value(directory, username):
    mark = directory.log_mark()
    assert template_store(directory).authenticate(text_token(username, PASSWORDS["admin"])) is None
    (dn,) = binds(directory.log_since(mark))
    rdns = parse_dn(dn)  # as slapd received it: one uid=... RDN in front of ou=people,dc=example,dc=org
    assert len(rdns) == 4 and rdns[0][0] == "uid" and rdns[0][2] == ",", rdns
    assert dn.endswith(f",{PEOPLE}")


def test_template_store_with_a_search_account_reads_groups_with_it(directory):
    mark = directory.log_mark()
    store = template_store(directory, bind_dn=READER_DN, bind_password=READER_PASSWORD)
    principal = store.authenticate(text_token("admin", PASSWORDS["admin"]))
    assert principal is not None and principal.roles == frozenset({"admin"})
    assert binds(directory.log_since(mark)) == [f"uid=admin,{PEOPLE}", READER_DN]


# ------------------------------------------------------------------ connections


def test_search_connections_are_reused(directory):
    store = make_store(directory)
    mark = directory.log_mark()
    for _ in range(3):
        assert store.authenticate(text_token("admin", PASSWORDS["admin"])) is not None
    # one search-account connection for all three, one connection per user bind
    assert accepted(directory.log_since(mark)) == 1 + 3
    assert binds(directory.log_since(mark)).count(READER_DN) == 1


def test_pool_size_zero_opens_a_search_connection_each_time(directory):
    store = make_store(directory, pool_size=0)
    mark = directory.log_mark()
    for _ in range(2):
        assert store.authenticate(text_token("admin", PASSWORDS["admin"])) is not None
    # each time: one for the user search, one for the user's bind, one for the group search
    assert accepted(directory.log_since(mark)) == 2 * 3


def test_concurrent_authentications_each_get_their_own_connection(directory):
    store = make_store(directory, pool_size=2)
    results: list[Principal | None] = []
    lock = threading.Lock()

    def one(username: str) -> None:
        principal = store.authenticate(text_token(username, PASSWORDS[username]))
        with lock:
            results.append(principal)

    threads = [threading.Thread(target=one, args=(name,)) for name in ["admin", "alice", "bob"] * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HANG_LIMIT)
    assert not any(t.is_alive() for t in threads)
    assert len(results) == 12 and all(results)
    assert sorted(p.name for p in results if p) == sorted(["admin", "alice", "bob"] * 4)


def test_a_failing_first_url_falls_over_to_the_next(directory):
    store = make_store(directory, urls=[f"ldap://127.0.0.1:{free_port()}", directory.url])
    assert store.authenticate(text_token("admin", PASSWORDS["admin"])) is not None


# ------------------------------------------------------------------ TLS


def test_ldaps_with_the_directory_ca(directory):
    store = make_store(directory, urls=directory.tls_url, ca_file=directory.ca_file)
    assert store.authenticate(text_token("admin", PASSWORDS["admin"])) is not None


def test_start_tls_with_the_directory_ca(directory):
    mark = directory.log_mark()
    store = make_store(directory, start_tls=True, ca_file=directory.ca_file)
    assert store.authenticate(text_token("admin", PASSWORDS["admin"])) is not None
    assert "EXT oid=1.3.6.1.4.1.1466.20037" in directory.log_since(mark)


@pytest.mark.parametrize("transport", ["ldaps", "start_tls"])
def test_an_untrusted_certificate_fails_closed_before_any_password_is_sent(directory, transport, caplog):
    caplog.set_level(logging.ERROR, logger=LOGGER)
    extra = {"urls": directory.tls_url} if transport == "ldaps" else {"start_tls": True}
    store = make_store(directory, **extra)  # the system's CAs: they did not issue the test certificate
    mark = directory.log_mark()
    with pytest.raises(RequestFailed) as refused:
        store.authenticate(text_token("admin", PASSWORDS["admin"]))
    assert refused.value.reason == UNAVAILABLE
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)
    assert binds(directory.log_since(mark)) == []


def test_a_certificate_for_another_name_is_refused(directory, tmp_path):
    # Same trusted CA, but the certificate names other.example, not 127.0.0.1.
    shutil.copy(directory.workdir / "ca.crt", tmp_path / "ca.crt")
    shutil.copy(directory.workdir / "ca.key", tmp_path / "ca.key")
    write_certificates(tmp_path, names=("other.example",), stem="other")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "other.crt", tmp_path / "other.key")
    with LoopbackServer("tls", context) as impostor:
        store = make_store(directory, urls=f"ldaps://127.0.0.1:{impostor.port}", ca_file=tmp_path / "ca.crt")
        outcome = bounded(lambda: store.authenticate(text_token("admin", PASSWORDS["admin"])))
    assert isinstance(outcome.get("error"), RequestFailed), outcome
    assert "match" in str(outcome["error"]).lower() or "mismatch" in str(outcome["error"]).lower()


def test_validate_false_connects_and_warns(directory, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    store = make_store(directory, urls=directory.tls_url, validate=False)
    assert any("validation is OFF" in m for m in ldap_messages(caplog))
    assert store.authenticate(text_token("admin", PASSWORDS["admin"])) is not None


def test_plain_ldap_to_a_remote_host_warns_at_construction(caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    LdapUserStore(urls="ldap://ldap.example.org", user_search_base=PEOPLE).close()
    assert any("in clear" in m for m in ldap_messages(caplog))


# ------------------------------------------------------------------ an unavailable directory


def assert_unavailable(outcome: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    error = outcome.get("error")
    assert isinstance(error, RequestFailed), outcome
    assert error.reason == UNAVAILABLE
    assert not error.sender  # a Receiver fault: the STS's trouble, not the caller's
    assert any("user directory unavailable" in m for m in ldap_messages(caplog))


def test_a_closed_port_raises_request_failed_and_logs(directory, caplog):
    caplog.set_level(logging.ERROR, logger=LOGGER)
    store = make_store(directory, urls=f"ldap://127.0.0.1:{free_port()}")
    assert_unavailable(bounded(lambda: store.authenticate(text_token("admin", PASSWORDS["admin"]))), caplog)


def test_a_directory_that_accepts_and_never_answers_raises_request_failed_within_the_timeouts(directory, caplog):
    caplog.set_level(logging.ERROR, logger=LOGGER)
    with LoopbackServer("silent") as silent:
        store = make_store(directory, urls=f"ldap://127.0.0.1:{silent.port}")
        outcome = bounded(lambda: store.authenticate(text_token("admin", PASSWORDS["admin"])))
        assert silent.connections >= 1
    assert_unavailable(outcome, caplog)
    assert "timed out" in str(outcome["error"])


def test_a_template_store_against_a_silent_directory_raises_request_failed(directory, caplog):
    caplog.set_level(logging.ERROR, logger=LOGGER)
    with LoopbackServer("silent") as silent:
        store = template_store(directory, urls=f"ldap://127.0.0.1:{silent.port}")
        outcome = bounded(lambda: store.authenticate(text_token("admin", PASSWORDS["admin"])))
    assert_unavailable(outcome, caplog)


def test_a_peer_answering_something_that_is_not_ldap_raises_request_failed(directory, caplog):
    caplog.set_level(logging.ERROR, logger=LOGGER)
    with LoopbackServer("garbage") as garbage:
        store = make_store(directory, urls=f"ldap://127.0.0.1:{garbage.port}")
        outcome = bounded(lambda: store.authenticate(text_token("admin", PASSWORDS["admin"])))
    assert_unavailable(outcome, caplog)


def test_a_refused_search_account_raises_request_failed(directory, caplog):
    caplog.set_level(logging.ERROR, logger=LOGGER)
    store = make_store(directory, bind_password="not-the-reader-password")
    assert_unavailable(bounded(lambda: store.authenticate(text_token("admin", PASSWORDS["admin"]))), caplog)
    assert any("search account" in m for m in ldap_messages(caplog))


def test_the_store_recovers_when_the_directory_returns(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    server = start_slapd(tmp_path / "slapd")
    try:
        store = make_store(server, pool_size=2)
        assert store.authenticate(text_token("admin", PASSWORDS["admin"])) is not None  # a pooled connection now
        server.stop()
        assert_unavailable(bounded(lambda: store.authenticate(text_token("admin", PASSWORDS["admin"]))), caplog)
        server.start()
        recovered = bounded(lambda: store.authenticate(text_token("admin", PASSWORDS["admin"])))
        assert isinstance(recovered.get("value"), Principal), recovered
    finally:
        server.cleanup()


def test_an_idle_connection_closed_by_a_restart_is_replaced_transparently(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    server = start_slapd(tmp_path / "slapd")
    try:
        store = make_store(server)
        assert store.authenticate(text_token("admin", PASSWORDS["admin"])) is not None
        server.stop()
        server.start()  # the pooled connection is now dead, and nobody has used it yet
        outcome = bounded(lambda: store.authenticate(text_token("admin", PASSWORDS["admin"])))
        assert isinstance(outcome.get("value"), Principal), outcome
        assert any("retrying on a new one" in m for m in ldap_messages(caplog))
    finally:
        server.cleanup()


# ------------------------------------------------------------------ through the STS


@pytest.fixture
def ldap_sts(directory: Slapd, sts_keys: KeyFiles, clock: FixedClock) -> TokenService:
    return TokenService(
        issuer=ISSUER,
        signing_key=sts_keys.load(),
        users=make_store(directory),
        relying_parties=[RelyingParty(SERVICE_URL)],
        clock=clock,
    )


def sts_client(app: TokenService, clock: FixedClock, username: str, password: str, **kwargs: Any) -> StsClient:
    return StsClient(STS_URL, username=username, password=password, transport=WSGITransport(app), clock=clock,
                     **kwargs)


def refusal(call: Callable[[], Any]) -> RemoteFault:
    outcome = bounded(call)
    error = outcome.get("error")
    assert isinstance(error, RemoteFault), outcome
    return error


@pytest.mark.parametrize("soap", ["1.1", "1.2"])
def test_sts_issues_admin_a_token_with_the_role_from_the_group_and_the_email_claim(
        ldap_sts, clock, sts_keys, soap):
    token = sts_client(ldap_sts, clock, "admin", PASSWORDS["admin"], soap_version=soap).request_token(SERVICE_URL)
    element = etree.fromstring(token.assertion)
    policy = saml.policy(trusted_certs=[sts_keys.load().certificate], issuers=[ISSUER], audiences=[SERVICE_URL])
    verified = saml.verify_assertion(element, policy, now=clock.now)
    assert verified.subject == "admin"
    assert verified.roles == ("admin",)
    assert verified.attributes[EMAIL] == ("admin@example.org",)
    assert verified.attributes[DISPLAY_NAME] == ("Admin Example",)


def test_requested_claims_are_released_from_the_directory_entry(ldap_sts, clock, sts_keys):
    """wst:Claims with an LDAP user store: what is asked and held in the entry, nothing else; a required claim
    the entry does not hold is the clear InvalidRequest (issue 15: 'held by the user (registry or LDAP)')."""
    phone = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/mobilephone"
    client = sts_client(ldap_sts, clock, "admin", PASSWORDS["admin"])
    token = client.request_token(SERVICE_URL, claims=[EMAIL, (phone, True)])
    policy = saml.policy(trusted_certs=[sts_keys.load().certificate], issuers=[ISSUER], audiences=[SERVICE_URL])
    verified = saml.verify_assertion(etree.fromstring(token.assertion), policy, now=clock.now)
    assert dict(verified.attributes) == {EMAIL: ("admin@example.org",)}  # no display name, no role, no phone
    fault = refusal(lambda: client.request_token(SERVICE_URL, claims=[phone]))
    assert fault.local_code == "InvalidRequest"
    assert fault.reason == f"The required claim {phone} cannot be supplied for this user."


def test_sts_refuses_alice_outside_the_admin_group_with_request_failed(ldap_sts, clock):
    fault = refusal(lambda: sts_client(ldap_sts, clock, "alice", PASSWORDS["alice"]).request_token(SERVICE_URL))
    assert fault.local_code == "RequestFailed"
    assert fault.code == f"{{{ns.WST13}}}RequestFailed"
    assert "not authorized" in fault.reason


def test_sts_answers_a_wrong_password_with_failed_authentication(ldap_sts, clock):
    fault = refusal(lambda: sts_client(ldap_sts, clock, "admin", "wrong").request_token(SERVICE_URL))
    assert fault.code == f"{{{ns.WST13}}}FailedAuthentication"


def test_sts_answers_an_unknown_user_and_an_injection_with_failed_authentication(ldap_sts, clock):
    for username in ("mallory", "*", "adm*"):
        fault = refusal(lambda: sts_client(ldap_sts, clock, username, PASSWORDS["admin"]).request_token(SERVICE_URL))
        assert fault.local_code == "FailedAuthentication"


def test_sts_answers_password_digest_with_failed_authentication(ldap_sts, clock, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    fault = refusal(lambda: sts_client(ldap_sts, clock, "admin", PASSWORDS["admin"], digest=True)
                    .request_token(SERVICE_URL))
    assert fault.local_code == "FailedAuthentication"
    assert any("PasswordDigest" in m for m in ldap_messages(caplog))


@pytest.mark.parametrize("outage", ["closed", "silent"])
def test_sts_answers_an_unavailable_directory_with_a_receiver_request_failed(
        sts_keys, clock, directory, caplog, outage):
    caplog.set_level(logging.ERROR, logger=LOGGER)
    with LoopbackServer("silent") as silent:
        port = silent.port if outage == "silent" else free_port()
        app = TokenService(issuer=ISSUER, signing_key=sts_keys.load(),
                           users=make_store(directory, urls=f"ldap://127.0.0.1:{port}"),
                           relying_parties=[RelyingParty(SERVICE_URL)], clock=clock)
        fault = refusal(lambda: sts_client(app, clock, "admin", PASSWORDS["admin"]).request_token(SERVICE_URL))
    assert fault.code == f"{{{ns.WST13}}}RequestFailed"
    assert fault.reason == UNAVAILABLE
    assert fault.soap_code == f"{{{ns.SOAP12}}}Receiver"
    assert fault.status == 500
    assert any("user directory unavailable" in m for m in ldap_messages(caplog))


def test_sts_recovers_when_the_directory_returns(sts_keys, clock, tmp_path):
    server = start_slapd(tmp_path / "slapd")
    try:
        app = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=make_store(server),
                           relying_parties=[RelyingParty(SERVICE_URL)], clock=clock)
        client = sts_client(app, clock, "admin", PASSWORDS["admin"])
        assert client.request_token(SERVICE_URL).assertion
        server.stop()
        assert refusal(lambda: client.request_token(SERVICE_URL)).reason == UNAVAILABLE
        server.start()
        assert bounded(lambda: client.request_token(SERVICE_URL)).get("value") is not None
    finally:
        server.cleanup()


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize(("overrides", "named"), [
    ({"urls": []}, "urls"),
    ({"urls": "http://127.0.0.1:389"}, "urls"),
    ({"urls": "ldap://127.0.0.1:389/dc=example,dc=org?uid"}, "urls"),
    ({"urls": "ldap://127.0.0.1:notaport"}, "urls"),
    ({"bind_password": ""}, "bind_password"),
    ({"bind_password": None}, "bind_dn and bind_password"),
    ({"bind_dn": "not a dn"}, "bind_dn"),
    ({"user_dn_template": f"uid={{username}},{PEOPLE}"}, "exactly one"),
    ({"user_search_base": None}, "exactly one"),
    ({"user_filter": "(uid=admin)"}, "user_filter"),
    ({"user_filter": "(uid={username}"}, "user_filter"),
    ({"user_filter": "(uid={user})"}, "user_filter"),
    ({"group_filter": "(member=cn=admin)"}, "group_filter"),
    ({"group_search_base": None}, "group_to_role"),
    ({"group_to_role": {}}, "group_to_role"),
    ({"group_to_role": {"staff": ""}}, "group_to_role"),
    ({"attribute_to_claim": {"mail)": EMAIL}}, "attribute_to_claim"),
    ({"name_attribute": "uid*"}, "name_attribute"),
    ({"connect_timeout": 0}, "connect_timeout"),
    ({"connect_timeout": float("inf")}, "connect_timeout"),
    ({"receive_timeout": 0.5}, "receive_timeout"),
    ({"receive_timeout": 0}, "receive_timeout"),
    ({"urls": "ldaps://127.0.0.1", "start_tls": True}, "start_tls"),
    ({"ca_file": "/nonexistent/ca.pem", "start_tls": True}, "ca_file"),
    ({"pool_size": -1}, "pool_size"),
    ({"pool_max_idle": 0}, "pool_max_idle"),
])
def test_bad_configuration_is_refused_at_construction_naming_the_option(directory, overrides, named):
    with pytest.raises(ConfigurationError) as refused:
        make_store(directory, **overrides)
    assert named in str(refused.value)


def test_a_ca_file_that_is_not_pem_is_refused_at_construction(directory, tmp_path):
    (tmp_path / "ca.pem").write_text("not a certificate")
    with pytest.raises(ConfigurationError, match="ca_file"):
        make_store(directory, start_tls=True, ca_file=tmp_path / "ca.pem")


def test_the_store_is_built_while_the_directory_is_down():
    # The STS must start while the directory is down; the first authentication finds out.
    store = LdapUserStore(urls=f"ldap://127.0.0.1:{free_port()}", user_search_base=PEOPLE, connect_timeout=1,
                          receive_timeout=1)
    with pytest.raises(RequestFailed):
        store.authenticate(text_token("admin", "x"))
    store.close()
