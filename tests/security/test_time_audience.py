"""Validity window, audience restriction and subject confirmation, all under a valid STS signature.

Every token here is genuinely signed by the trusted key, so only the checks on
*what* was signed can refuse it: ``wsse:InvalidSecurityToken`` for a token that is
expired, not yet valid, issued in the future, for another audience (exact string
comparison: case, trailing slash, scheme, port, percent-encoding all differ),
without an audience restriction, or not a bearer token. Controls are admitted.
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
