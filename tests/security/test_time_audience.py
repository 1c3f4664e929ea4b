"""Validity window, audience restriction and subject confirmation, all under a valid STS signature.

Every token here is genuinely signed by the trusted key, so only the checks on
*what* was signed can refuse it: ``wsse:InvalidSecurityToken`` for a token that is
expired, not yet valid, issued in the future, for another audience (exact string
comparison: case, trailing slash, scheme, port, percent-encoding all differ),
without an audience restriction, or not a bearer token; and for bearer
confirmation data the SAML 2.0 profiles (4.1.4.2-4.1.4.3) forbid or that names
another service: NotBefore, InResponseTo, a Recipient that is not us, and
(when the middleware is told to check it) an Address that is not the client's.
Controls are admitted.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from lxml import etree

from _attacks import (  # noqa: F401  (fixtures)
    VERSION_PAIRS,
    admitted,
    build,
    envelope,
    guard,
    guarded,
    issue,
    low_privilege,
    post,
    recorder,
    refused,
    sts_key,
)
from _forge import qn, sign_with
from _support import SERVICE_URL
from wstrust_wsgi import ns, saml

INVALID = "wsse:InvalidSecurityToken"
ADMIT = "admitted"
OTHER_AUDIENCE = "http://127.0.0.1:8082/services/other"


def _conditions(root: etree._Element, version: saml.SamlVersion) -> etree._Element:
    return root.find(qn(version.namespace, "Conditions"))


def _restriction_tag(version: saml.SamlVersion) -> str:
    local = "AudienceRestriction" if version is saml.SAML2 else "AudienceRestrictionCondition"
    return qn(version.namespace, local)


def _restriction(version: saml.SamlVersion, *audiences: str) -> etree._Element:
    restriction = etree.Element(_restriction_tag(version))
    for audience in audiences:
        etree.SubElement(restriction, qn(version.namespace, "Audience")).text = audience
    return restriction


def _drop(path: str) -> Callable:
    def edit(root, version, now):  # type: ignore[no-untyped-def]
        element = root.find(path.replace("{s}", "{" + version.namespace + "}"))
        element.getparent().remove(element)
    return edit


def _unset(attribute: str) -> Callable:
    def edit(root, version, now):  # type: ignore[no-untyped-def]
        del _conditions(root, version).attrib[attribute]
    return edit


def _set_condition(attribute: str, value: str) -> Callable:
    def edit(root, version, now):  # type: ignore[no-untyped-def]
        _conditions(root, version).set(attribute, value)
    return edit


def _set_time(attribute: str, offset: timedelta, on: str = "conditions") -> Callable:
    def edit(root, version, now):  # type: ignore[no-untyped-def]
        target = _conditions(root, version) if on == "conditions" else root
        target.set(attribute, saml.format_datetime(now + offset))
    return edit


def _set_root(attribute: str, value: str) -> Callable:
    def edit(root, version, now):  # type: ignore[no-untyped-def]
        root.set(attribute, value)
    return edit


def drop_restrictions(root, version, now):  # type: ignore[no-untyped-def]
    conditions = _conditions(root, version)
    for restriction in conditions.findall(_restriction_tag(version)):
        conditions.remove(restriction)


def empty_restriction(root, version, now):  # type: ignore[no-untyped-def]
    drop_restrictions(root, version, now)
    _conditions(root, version).append(_restriction(version))


def empty_audience(root, version, now):  # type: ignore[no-untyped-def]
    drop_restrictions(root, version, now)
    _conditions(root, version).append(_restriction(version, ""))


def _extra_restriction(*audiences: str) -> Callable:
    def edit(root, version, now):  # type: ignore[no-untyped-def]
        _conditions(root, version).append(_restriction(version, *audiences))
    return edit


def _only_restriction(*audiences: str) -> Callable:
    def edit(root, version, now):  # type: ignore[no-untyped-def]
        drop_restrictions(root, version, now)
        _conditions(root, version).append(_restriction(version, *audiences))
    return edit


def second_conditions(root, version, now):  # type: ignore[no-untyped-def]
    conditions = _conditions(root, version)
    conditions.addnext(etree.fromstring(etree.tostring(conditions)))


def drop_subject(root, version, now):  # type: ignore[no-untyped-def]
    for statement in [root, *root]:
        subject = statement.find(qn(version.namespace, "Subject"))
        if subject is not None:
            statement.remove(subject)


def not_bearer(root, version, now):  # type: ignore[no-untyped-def]
    holder_of_key = {saml.SAML2: "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key",
                     saml.SAML11: "urn:oasis:names:tc:SAML:1.0:cm:holder-of-key"}[version]
    if version is saml.SAML2:
        for confirmation in root.iter(qn(ns.SAML2, "SubjectConfirmation")):
            confirmation.set("Method", holder_of_key)
    else:
        for method in root.iter(qn(ns.SAML1, "ConfirmationMethod")):
            method.text = holder_of_key


def drop_subject_confirmation(root, version, now):  # type: ignore[no-untyped-def]
    for confirmation in list(root.iter(qn(version.namespace, "SubjectConfirmation"))):
        confirmation.getparent().remove(confirmation)


def confirmation_expired(root, version, now):  # type: ignore[no-untyped-def]
    for data in root.iter(qn(ns.SAML2, "SubjectConfirmationData")):
        data.set("NotOnOrAfter", saml.format_datetime(now - timedelta(minutes=6)))


def _bearer_data(**attributes: str) -> Callable:
    """Set attributes on the bearer SubjectConfirmationData (SAML 2.0); a value "{now}" is the current time."""
    def edit(root, version, now):  # type: ignore[no-untyped-def]
        for data in root.iter(qn(ns.SAML2, "SubjectConfirmationData")):
            for name, value in attributes.items():
                data.set(name, saml.format_datetime(now - timedelta(minutes=1)) if value == "{now}" else value)
    return edit


def _second_confirmation(method: str, **attributes: str) -> Callable:
    """Add a second SubjectConfirmation (``method``) whose data carries ``attributes``."""
    def edit(root, version, now):  # type: ignore[no-untyped-def]
        first = next(root.iter(qn(ns.SAML2, "SubjectConfirmation")))
        second = etree.Element(qn(ns.SAML2, "SubjectConfirmation"), Method=method)
        data = etree.SubElement(second, qn(ns.SAML2, "SubjectConfirmationData"),
                                NotOnOrAfter=saml.format_datetime(now + timedelta(minutes=5)))
        for name, value in attributes.items():
            data.set(name, saml.format_datetime(now - timedelta(minutes=1)) if value == "{now}" else value)
        first.addnext(second)
    return edit


def two_subjects(root, version, now):  # type: ignore[no-untyped-def]
    """SAML 1.1 repeats the subject in each statement: make the two disagree."""
    names = list(root.iter(qn(ns.SAML1, "NameIdentifier")))
    assert len(names) == 2
    names[0].text = "admin"


BOTH = (saml.SAML2, saml.SAML11)
#: name -> (edit before signing, expected, versions it applies to)
SHAPES: dict[str, tuple[Callable, str, tuple]] = {
    "conditions-missing": (_drop("{s}Conditions"), INVALID, BOTH),
    "conditions-without-not-on-or-after": (_unset("NotOnOrAfter"), INVALID, BOTH),
    "conditions-without-not-before": (_unset("NotBefore"), ADMIT, BOTH),
    "not-on-or-after-without-time-zone": (_set_condition("NotOnOrAfter", "2099-01-01T00:00:00"), INVALID, BOTH),
    "not-on-or-after-not-a-time": (_set_condition("NotOnOrAfter", "tomorrow"), INVALID, BOTH),
    "not-before-not-a-time": (_set_condition("NotBefore", "yesterday"), INVALID, BOTH),
    "expired-a-day-ago": (_set_time("NotOnOrAfter", timedelta(days=-1)), INVALID, BOTH),
    "expired-just-beyond-the-skew": (_set_time("NotOnOrAfter", timedelta(minutes=-5)), INVALID, BOTH),
    "expired-within-the-skew": (_set_time("NotOnOrAfter", timedelta(minutes=-4, seconds=-59)), ADMIT, BOTH),
    "not-yet-valid-by-a-day": (_set_time("NotBefore", timedelta(days=1)), INVALID, BOTH),
    "not-yet-valid-just-beyond-the-skew": (_set_time("NotBefore", timedelta(minutes=5, seconds=1)), INVALID, BOTH),
    "not-before-within-the-skew": (_set_time("NotBefore", timedelta(minutes=4, seconds=59)), ADMIT, BOTH),
    "issue-instant-a-day-ahead": (_set_time("IssueInstant", timedelta(days=1), on="root"), INVALID, BOTH),
    "issue-instant-a-year-ahead": (_set_time("IssueInstant", timedelta(days=365), on="root"), INVALID, BOTH),
    "issue-instant-within-the-skew": (_set_time("IssueInstant", timedelta(minutes=4), on="root"), ADMIT, BOTH),
    "issue-instant-not-a-time": (_set_root("IssueInstant", "not a time"), INVALID, BOTH),
    "audience-restriction-missing": (drop_restrictions, INVALID, BOTH),
    "audience-restriction-empty": (empty_restriction, INVALID, BOTH),
    "audience-empty-text": (empty_audience, INVALID, BOTH),
    "second-restriction-without-us": (_extra_restriction(OTHER_AUDIENCE), INVALID, BOTH),
    "second-restriction-empty": (_extra_restriction(), INVALID, BOTH),
    "second-restriction-with-us-too": (_extra_restriction(OTHER_AUDIENCE, SERVICE_URL), ADMIT, BOTH),
    "several-audiences-including-us": (_only_restriction(OTHER_AUDIENCE, SERVICE_URL), ADMIT, BOTH),
    "several-audiences-without-us": (_only_restriction(OTHER_AUDIENCE, SERVICE_URL + "/"), INVALID, BOTH),
    "two-conditions-elements": (second_conditions, INVALID, BOTH),
    "subject-missing": (drop_subject, INVALID, BOTH),
    "subject-confirmation-missing": (drop_subject_confirmation, INVALID, BOTH),
    "subject-confirmation-holder-of-key": (not_bearer, INVALID, BOTH),
    "subject-confirmation-data-expired": (confirmation_expired, INVALID, (saml.SAML2,)),
    "two-different-subjects": (two_subjects, INVALID, (saml.SAML11,)),
    # bearer SubjectConfirmationData, SAML 2.0 profiles 4.1.4.2-4.1.4.3 (SAML 1.1 has no such fields)
    "bearer-recipient-is-us": (_bearer_data(Recipient=SERVICE_URL), ADMIT, (saml.SAML2,)),
    "bearer-recipient-another-service": (_bearer_data(Recipient=OTHER_AUDIENCE), INVALID, (saml.SAML2,)),
    "bearer-recipient-us-with-a-slash": (_bearer_data(Recipient=SERVICE_URL + "/"), INVALID, (saml.SAML2,)),
    "bearer-recipient-empty": (_bearer_data(Recipient=""), INVALID, (saml.SAML2,)),
    "bearer-not-before-in-the-past": (_bearer_data(NotBefore="{now}"), INVALID, (saml.SAML2,)),
    "bearer-in-response-to": (_bearer_data(InResponseTo="_request1"), INVALID, (saml.SAML2,)),
    "bearer-recipient-us-and-in-response-to": (_bearer_data(Recipient=SERVICE_URL, InResponseTo="_r"), INVALID,
                                               (saml.SAML2,)),
    "bearer-address-unchecked-by-default": (_bearer_data(Address="192.0.2.99"), ADMIT, (saml.SAML2,)),
    "second-bearer-for-another-recipient": (_second_confirmation(ns.SAML2_BEARER, Recipient=OTHER_AUDIENCE),
                                            INVALID, (saml.SAML2,)),
    "second-bearer-with-not-before": (_second_confirmation(ns.SAML2_BEARER, NotBefore="{now}"), INVALID,
                                      (saml.SAML2,)),
    "holder-of-key-beside-bearer-keeps-its-not-before": (
        _second_confirmation("urn:oasis:names:tc:SAML:2.0:cm:holder-of-key", NotBefore="{now}"), ADMIT,
        (saml.SAML2,)),
}
CASES = [(name, version, soap) for name, (_, _, versions) in SHAPES.items()
         for version, soap in ((saml.SAML2, "1.2"), (saml.SAML11, "1.1")) if version in versions]


@pytest.mark.parametrize(("shape", "version", "soap"), CASES,
                         ids=[f"{n}-saml{v.name}-soap{s}" for n, v, s in CASES])
def test_signed_conditions_and_subject(guarded, recorder, sts_key, clock, shape, version, soap):
    edit, expected, _ = SHAPES[shape]
    what = low_privilege(clock.now)
    root = build(version, what)
    root.remove(root.find("{http://www.w3.org/2000/09/xmldsig#}Signature"))  # sign_with places its own
    edit(root, version, clock.now)
    data = sign_with(sts_key, version, what, root=root)
    response = post(guarded, envelope([data], soap=soap), soap)
    if expected == ADMIT:
        admitted(response, recorder, "alice")
    else:
        refused(response, soap, expected, recorder=recorder)


AUDIENCES = {
    "upper-case": SERVICE_URL.upper(),
    "host-upper-case": SERVICE_URL.replace("http://", "HTTP://"),
    "path-case": SERVICE_URL.replace("/echo", "/ECHO"),
    "trailing-slash": SERVICE_URL + "/",
    "https-scheme": SERVICE_URL.replace("http://", "https://"),
    "other-port": SERVICE_URL.replace(":8081", ":8082"),
    "port-omitted": SERVICE_URL.replace(":8081", ""),
    "localhost-for-127.0.0.1": SERVICE_URL.replace("127.0.0.1", "localhost"),
    "percent-encoded-path": SERVICE_URL.replace("/echo", "/%65cho"),
    "query-appended": SERVICE_URL + "?wsdl",
    "fragment-appended": SERVICE_URL + "#x",
    "prefix-of-ours": SERVICE_URL[:-1],
    "ours-as-prefix": SERVICE_URL + "-evil",
    "urn-form": "urn:" + SERVICE_URL,
}


@VERSION_PAIRS
@pytest.mark.parametrize("audience", list(AUDIENCES))
def test_audience_differing_in_any_way_is_not_ours(guarded, recorder, issue, version, soap, audience):
    data = issue(version, audience=AUDIENCES[audience]).signed
    fault = refused(post(guarded, envelope([data], soap=soap), soap), soap, INVALID, recorder=recorder)
    assert fault.reason == "The security token was not issued for this service."


@VERSION_PAIRS
@pytest.mark.parametrize(
    ("minutes", "outcome"),
    [(0, ADMIT), (9, ADMIT), (10, INVALID), (60 * 24, INVALID), (-5, ADMIT), (-6, INVALID), (-60 * 24, INVALID)],
    ids=["now", "lifetime-plus-most-of-skew", "lifetime-plus-skew", "a-day-later", "skew-before",
         "beyond-skew-before", "a-day-before"],
)
def test_clock_against_the_validity_window(guarded, recorder, issue, clock, version, soap, minutes, outcome):
    """The module's token was issued at ``token.what.issue_instant`` for five minutes; skew is five minutes."""
    token = issue(version)
    clock.now = token.what.issue_instant + timedelta(minutes=minutes)
    response = post(guarded, envelope([token.signed], soap=soap), soap)
    if outcome == ADMIT:
        admitted(response, recorder, "alice")
    else:
        fault = refused(response, soap, outcome, recorder=recorder)
        assert fault.reason == "The security token has expired or is not yet valid."


def _with_address(sts_key, clock, address: str | None) -> bytes:  # type: ignore[no-untyped-def]
    what = low_privilege(clock.now)
    root = build(saml.SAML2, what)
    root.remove(root.find("{http://www.w3.org/2000/09/xmldsig#}Signature"))
    if address is not None:
        _bearer_data(Address=address)(root, saml.SAML2, clock.now)
    return sign_with(sts_key, saml.SAML2, what, root=root)


def _from(app, body: bytes, soap: str, address: str):  # type: ignore[no-untyped-def]
    content_type = {"1.1": "text/xml", "1.2": "application/soap+xml"}[soap] + "; charset=utf-8"
    return app.post("/services/echo", body, headers={"Content-Type": content_type},
                    extra_environ={"REMOTE_ADDR": address}, expect_errors=True)


@pytest.mark.parametrize(("address", "client", "outcome"), [
    ("192.0.2.7", "192.0.2.7", ADMIT),
    ("192.0.2.7", "192.0.2.8", INVALID),
    ("2001:db8::1", "2001:db8:0:0:0:0:0:1", ADMIT),
    ("::ffff:192.0.2.7", "192.0.2.7", ADMIT),
    ("2001:db8::1", "2001:db8::2", INVALID),
    ("client.example.org", "192.0.2.7", INVALID),
    (" 192.0.2.7", "192.0.2.7", INVALID),
    (None, "192.0.2.7", ADMIT),
], ids=["same-ipv4", "other-ipv4", "same-ipv6-written-long", "ipv4-mapped", "other-ipv6", "a-host-name",
        "leading-space", "no-address"])
def test_bearer_address_is_the_client_address_when_configured(recorder, sts_key, sts_keys, clock, address, client,
                                                              outcome):
    app = guard(recorder, sts_keys.cert, clock, check_address=True)
    response = _from(app, envelope([_with_address(sts_key, clock, address)], soap="1.2"), "1.2", client)
    if outcome == ADMIT:
        admitted(response, recorder, "alice")
    else:
        fault = refused(response, "1.2", outcome, recorder=recorder)
        assert fault.reason == "The security token may not be presented from this address."


def test_bearer_address_is_checked_on_every_request_of_a_reused_token(recorder, sts_key, sts_keys, clock):
    """The token's bytes are verified once and remembered; the client address still counts each time."""
    app = guard(recorder, sts_keys.cert, clock, check_address=True)
    body = envelope([_with_address(sts_key, clock, "192.0.2.7")], soap="1.1")
    outcomes = [_from(app, body, "1.1", client).status_int
                for client in ("192.0.2.7", "192.0.2.8", "192.0.2.7", "198.51.100.1")]
    assert outcomes == [200, 500, 200, 500]
    assert len(app.app._fast.seen) == 1  # the reused path answered the later requests


def test_bearer_address_is_ignored_unless_configured(recorder, sts_key, sts_keys, clock):
    app = guard(recorder, sts_keys.cert, clock)
    body = envelope([_with_address(sts_key, clock, "192.0.2.7")], soap="1.1")
    assert [_from(app, body, "1.1", client).status_int for client in ("192.0.2.8", "192.0.2.7")] == [200, 200]


def test_saml11_has_no_address_to_check(recorder, issue, sts_keys, clock):
    app = guard(recorder, sts_keys.cert, clock, check_address=True)
    token = issue(saml.SAML11)
    clock.now = token.what.issue_instant
    admitted(_from(app, envelope([token.signed], soap="1.1"), "1.1", "192.0.2.8"), recorder, "alice")
