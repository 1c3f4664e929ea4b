"""_checks: the one engine behind the middleware's verdict, its refusal log line and ``diagnose``.

A refusal names its check and both values in the server log, while the
client's fault stays the short reason it always was; a trace changes nothing
about the verdict (it only records), and the request path records nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest
import webtest

from wstrust_wsgi import RelyingPartyMiddleware, saml
from wstrust_wsgi._checks import BY_NAME, CHECKS, Trace, describe
from wstrust_wsgi.errors import InvalidSecurityToken, SoapFault
from wstrust_wsgi.testing import DEFAULT_AUDIENCE, DEFAULT_ISSUER, SettableClock, TokenFactory, soap_request


def _service(clock: SettableClock | None = None) -> RelyingPartyMiddleware:
    def echo(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    kit = TokenFactory()
    return RelyingPartyMiddleware(echo, audience=kit.audience, issuer=kit.issuer, trusted_certs=kit.trusted_certs,
                                  clock=clock or SettableClock())


def test_the_refusal_log_line_names_the_check_and_both_values_and_the_fault_stays_short(caplog):
    service = _service()
    token = TokenFactory().mint(audience=DEFAULT_AUDIENCE + "/")
    request = soap_request(token, b"<Ping xmlns='urn:example'/>")
    with caplog.at_level(logging.WARNING, logger="wstrust_wsgi.middleware"):
        response = webtest.TestApp(service).post("/", request.body, headers=request.headers, expect_errors=True)
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused")]
    assert "[check=audience expected=\"one of ['https://service.test/soap']\" " \
           "actual=\"['https://service.test/soap/']\"]" in line
    assert b"The security token was not issued for this service." in response.body
    assert b"check" not in response.body and b"service.test/soap/" not in response.body


@pytest.mark.parametrize("variant", ["mint", "expired", "wrong_audience", "wrong_issuer", "tampered", "untrusted",
                                     "unsigned", "not_yet_valid"])
@pytest.mark.parametrize("version", ["2.0", "1.1"])
def test_a_trace_records_but_never_changes_the_verdict(variant, version):
    kit = TokenFactory(version=version)
    token = getattr(kit, variant)()
    policy = saml.policy(trusted_certs=kit.trusted_certs, issuers=[DEFAULT_ISSUER], audiences=[DEFAULT_AUDIENCE])
    now = datetime.now(timezone.utc)

    def verdict(trace: Trace | None) -> str:
        from wstrust_wsgi import _xml
        try:
            return saml.verify_assertion(_xml.parse(token.assertion), policy, now=now, trace=trace).assertion_id
        except SoapFault as fault:
            return f"{type(fault).__name__}: {fault.detail} {describe(fault)}"

    trace = Trace()
    assert verdict(None) == verdict(trace)
    if variant == "mint":
        assert trace.failure is None and trace.steps
    assert [s.check for s in trace.steps] == sorted((s.check for s in trace.steps),
                                                    key=[c.name for c in CHECKS].index)  # in order


def test_every_check_a_fault_names_is_in_the_catalogue():
    assert len(BY_NAME) == len(CHECKS)
    fault = InvalidSecurityToken("x", check="issuer", expected="a", actual="b")
    assert describe(fault) == " [check=issuer expected='a' actual='b']"
    assert describe(InvalidSecurityToken("untagged")) == ""
    step = Trace().failed(InvalidSecurityToken("no check named"))
    assert step.check == CHECKS[0].name  # an untagged fault is the next check's


def test_explain_runs_the_full_path_without_touching_the_replay_cache():
    class Replay:
        def __init__(self) -> None:
            self.keys: list[str] = []

        def add(self, key, *, expires, now):  # type: ignore[no-untyped-def]
            self.keys.append(key)
            return True

    replay = Replay()
    kit = TokenFactory()
    service = RelyingPartyMiddleware(lambda e, s: [], audience=kit.audience, issuer=kit.issuer,
                                     trusted_certs=kit.trusted_certs, replay_cache=replay)
    request = soap_request(kit.mint(), b"<Ping xmlns='urn:example'/>")
    trace, verified = service.explain(request.body, request.headers["Content-Type"])
    assert verified is not None and trace.failure is None
    assert {s.check: s.verdict for s in trace.steps}["replay"] == "skipped"
    assert replay.keys == []


@pytest.mark.parametrize("variant", ["mint", "expired", "wrong_audience", "wrong_issuer", "tampered", "untrusted",
                                     "unsigned", "not_yet_valid"])
def test_explain_reaches_the_verdict_the_middleware_answers_on_its_fast_path(variant, caplog):
    clock = SettableClock()
    service = _service(clock)
    request = soap_request(getattr(TokenFactory(clock=clock), variant)(), b"<Ping xmlns='urn:example'/>")
    trace, verified = service.explain(request.body, request.headers["Content-Type"])
    with caplog.at_level(logging.WARNING, logger="wstrust_wsgi.middleware"):
        response = webtest.TestApp(service).post("/", request.body, headers=request.headers, expect_errors=True)
    if verified is not None:
        assert response.status_int == 200 and trace.fault is None
        return
    assert isinstance(trace.fault, SoapFault)
    assert f":{trace.fault.code}<".encode() in response.body and trace.fault.reason.encode() in response.body
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused")]
    assert trace.fault.detail in line and f"check={trace.failure.check}" in line


def test_find_middleware_walks_partials_closures_and_url_maps():
    import functools

    from wstrust_wsgi.cli.diagnose import find_middleware

    inner = _service()

    def outer(app, environ, start_response):  # type: ignore[no-untyped-def]
        return app(environ, start_response)

    def closure(app):  # type: ignore[no-untyped-def]
        return lambda environ, start_response: app(environ, start_response)

    assert find_middleware(functools.partial(outer, closure({"/soap": [inner]}))) is inner
