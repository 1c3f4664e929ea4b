"""Comments and whitespace in signed text: the CVE-2017-11427 family.

Exclusive c14n does not sign comments, so a comment inserted into a signed text
node after signing leaves the signature valid. A reader that takes only the
first text node then sees a *prefix* of what was signed: ``admin.evil`` becomes
``admin``, a token for ``.../echo-evil`` looks like one for ``.../echo``. The
subject, issuer, audience and attribute values the service gets must be the
whole signed text, always. The same goes for whitespace: what the STS signed is
what the service sees, untrimmed (`` admin`` is not ``admin``), and whitespace
added after signing breaks the signature. Processing instructions *are* signed
by c14n, so inserting one is a failed check.
"""

from __future__ import annotations

import pytest
from lxml import etree

from _attacks import (  # noqa: F401  (fixtures)
    VERSION_PAIRS,
    admitted,
    envelope,
    guarded,
    issue,
    post,
    recorder,
    refused,
    sts_key,
)
from _forge import ECHO_NS, ENV_NS, qn, soap_request
from _support import ISSUER, SERVICE_URL
from wstrust_wsgi import ns, saml

#: How the attacker splits a signed text "<head><tail>": name -> replacement of the text.
SPLITS = {
    "empty-comment": "{head}<!---->{tail}",
    "comment-with-text": "{head}<!-- the rest is ignored -->{tail}",
    "two-comments": "{head}<!--a--><!--b-->{tail}",
    "comment-first": "<!--x-->{head}{tail}",
    "comment-last": "{head}{tail}<!--x-->",
    "comments-everywhere": "<!--a-->{head}<!--b-->{tail}<!--c-->",
    "cdata-section": "{head}<![CDATA[{tail}]]>",
}


def split(data: bytes, head: str, tail: str, how: str) -> bytes:
    """Rewrite every ``>head+tail<`` text node of ``data`` the attacker's way."""
    whole = f">{head}{tail}<".encode()
    assert whole in data, whole
    forged = data.replace(whole, (">" + SPLITS[how].format(head=head, tail=tail) + "<").encode())
    assert forged != data
    return forged


@VERSION_PAIRS
@pytest.mark.parametrize("how", list(SPLITS))
def test_split_subject_is_read_whole(guarded, recorder, issue, version, soap, how):
    """The attacker registered ``admin.evil.example``; a truncating reader would see ``admin``."""
    data = split(issue(version, subject="admin.evil.example").signed, "admin", ".evil.example", how)
    verified = admitted(post(guarded, envelope([data], soap=soap), soap), recorder, "admin.evil.example")
    assert verified.roles == ("everyone",)


@VERSION_PAIRS
@pytest.mark.parametrize("how", ["empty-comment", "comment-with-text", "cdata-section"])
def test_split_audience_of_another_service_is_still_another_service(guarded, recorder, issue, version, soap, how):
    """Signed for ``.../echo-evil``; the prefix is exactly our audience."""
    data = issue(version, audience=SERVICE_URL + "-evil").signed
    fault = refused(post(guarded, envelope([split(data, SERVICE_URL, "-evil", how)], soap=soap), soap), soap,
                    "wsse:InvalidSecurityToken", recorder=recorder)
    assert fault.reason == "The security token was not issued for this service."


@VERSION_PAIRS
@pytest.mark.parametrize("how", ["empty-comment", "comments-everywhere", "cdata-section"])
def test_split_audience_of_this_service_is_admitted(guarded, recorder, issue, version, soap, how):
    """Control: the same split inside our own audience changes nothing."""
    head, tail = SERVICE_URL[:20], SERVICE_URL[20:]
    data = split(issue(version).signed, head, tail, how)
    assert admitted(post(guarded, envelope([data], soap=soap), soap), recorder, "alice").audiences == (SERVICE_URL,)


@pytest.mark.parametrize("how", ["empty-comment", "comment-with-text", "cdata-section"])
@pytest.mark.parametrize("soap", ["1.1", "1.2"], ids=["soap1.1", "soap1.2"])
def test_split_issuer_of_another_sts_is_still_untrusted(guarded, recorder, issue, soap, how):
    """SAML 2.0 Issuer is element text (1.1 has it in an attribute, where comments cannot go)."""
    data = issue(saml.SAML2, issuer=ISSUER + ".evil").signed
    fault = refused(post(guarded, envelope([split(data, ISSUER, ".evil", how)], soap=soap), soap), soap,
                    "wsse:InvalidSecurityToken", recorder=recorder)
    assert fault.reason == "The security token's issuer is not trusted."


@VERSION_PAIRS
@pytest.mark.parametrize("how", ["empty-comment", "comment-with-text", "cdata-section"])
def test_split_role_is_read_whole(guarded, recorder, issue, version, soap, how):
    data = split(issue(version, attributes={ns.CLAIM_ROLE: ["admin-of-nothing"]}).signed, "admin", "-of-nothing", how)
    verified = admitted(post(guarded, envelope([data], soap=soap), soap), recorder, "alice")
    assert verified.roles == ("admin-of-nothing",)


@VERSION_PAIRS
@pytest.mark.parametrize("where", ["subject", "audience"])
def test_processing_instruction_inserted_after_signing_fails_check(guarded, recorder, issue, version, soap, where):
    """Unlike comments, processing instructions are part of exclusive c14n output."""
    data = issue(version, subject="admin.evil.example").signed
    if where == "subject":
        forged = data.replace(b">admin.evil.example<", b">admin<?x ?>.evil.example<")
    else:
        forged = data.replace(f">{SERVICE_URL}<".encode(), f">{SERVICE_URL}<?x ?><".encode())
    assert forged != data
    refused(post(guarded, envelope([forged], soap=soap), soap), soap, "wsse:FailedCheck", recorder=recorder)


# --------------------------------------------------------------------------- whitespace

SIGNED_SUBJECTS = {
    "leading-space": " admin",
    "trailing-space": "admin ",
    "leading-tab": "\tadmin",
    "newlines-around": "\nadmin\n",
    "carriage-return": "\r\nadmin",
    "inner-space": "ad min",
    "no-break-space": "admin\u00a0",
    "ideographic-space": "\u3000admin",
}


@VERSION_PAIRS
@pytest.mark.parametrize("name", list(SIGNED_SUBJECTS))
def test_whitespace_signed_into_the_subject_is_kept_exactly(guarded, recorder, issue, version, soap, name):
    subject = SIGNED_SUBJECTS[name]
    data = issue(version, subject=subject).signed
    verified = admitted(post(guarded, envelope([data], soap=soap), soap), recorder, subject)
    assert verified.subject != "admin"


def test_whitespace_subject_reaches_the_echo_service_untrimmed(service_app, issue):
    import webtest

    data = issue(saml.SAML2, subject=" admin").signed
    response = post(webtest.TestApp(service_app), soap_request(data))
    assert response.status_int == 200
    caller = etree.fromstring(response.body).find(f"{qn(ENV_NS['1.1'], 'Body')}//{qn(ECHO_NS, 'Caller')}")
    assert caller.text == " admin"


@VERSION_PAIRS
@pytest.mark.parametrize("edited", [" admin", "admin ", "\nadmin", "admin\t", "ad min"],
                         ids=["leading-space", "trailing-space", "leading-newline", "trailing-tab", "inner-space"])
def test_whitespace_added_to_the_subject_after_signing_fails_check(guarded, recorder, issue, version, soap, edited):
    data = issue(version, subject="admin").signed
    forged = data.replace(b">admin<", f">{edited}<".encode())
    assert forged != data
    refused(post(guarded, envelope([forged], soap=soap), soap), soap, "wsse:FailedCheck", recorder=recorder)


@VERSION_PAIRS
@pytest.mark.parametrize(
    "audience",
    [SERVICE_URL + " ", " " + SERVICE_URL, "\n" + SERVICE_URL + "\n", SERVICE_URL + "\t", SERVICE_URL + "\u00a0"],
    ids=["trailing-space", "leading-space", "pretty-printed", "trailing-tab", "trailing-no-break-space"],
)
def test_audience_signed_with_whitespace_is_not_ours(guarded, recorder, issue, version, soap, audience):
    data = issue(version, audience=audience).signed
    fault = refused(post(guarded, envelope([data], soap=soap), soap), soap, "wsse:InvalidSecurityToken",
                    recorder=recorder)
    assert fault.reason == "The security token was not issued for this service."


@VERSION_PAIRS
@pytest.mark.parametrize("issuer", [ISSUER + " ", " " + ISSUER], ids=["trailing-space", "leading-space"])
def test_issuer_signed_with_whitespace_is_not_trusted(guarded, recorder, issue, version, soap, issuer):
    data = issue(version, issuer=issuer).signed
    fault = refused(post(guarded, envelope([data], soap=soap), soap), soap, "wsse:InvalidSecurityToken", recorder=recorder)
    assert fault.reason == "The security token's issuer is not trusted."


@VERSION_PAIRS
def test_empty_subject_is_an_invalid_token(guarded, recorder, issue, version, soap):
    data = issue(version, subject="").signed
    refused(post(guarded, envelope([data], soap=soap), soap), soap, "wsse:InvalidSecurityToken", recorder=recorder)
