"""testing/plugin.py: the pytest plugin, used the way a user uses it, through pytester.

A small user project (a protected SOAP service, its conftest and its tests,
written only against the public kit) runs under pytester: it passes as written,
and the same tests fail with readable messages when the service is
misconfigured (an audience with a trailing slash, a certificate that is not the
kit's). Also: the README example runs verbatim, the plugin works without
WebTest, its fixtures are all prefixed, and the ``pytest11`` entry point both
loads it by itself and is turned off by ``-p no:wstrust``.

Until the package is reinstalled with the entry point, the plugin is given with
``-p wstrust_wsgi.testing.plugin``; once it is installed, it loads by itself
(giving it twice would register it twice).
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest

from wstrust_wsgi import generate_demo_key_pair
from wstrust_wsgi.testing import plugin

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_MODULE = "wstrust_wsgi.testing.plugin"


def _installed() -> bool:
    return any(ep.name == "wstrust" for ep in importlib.metadata.entry_points(group="pytest11"))


#: How to load the plugin in a pytester run: by itself once installed, named until then.
PLUGIN_ARGS = [] if _installed() else ["-p", PLUGIN_MODULE]

SERVICE = '''
"""A user's SOAP service, greeting the caller, protected by wstrust-wsgi as its deployment does."""
from wstrust_wsgi import RelyingPartyMiddleware, get_assertion

AUDIENCE = "{audience}"
ISSUER = "https://sts.example.org/services/sts"


def greeter(environ, start_response):
    roles = ",".join(get_assertion(environ).roles)
    answer = ('<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
              f'<Greeting xmlns="urn:greeter" roles="{{roles}}">Hello {{environ["REMOTE_USER"]}}</Greeting>'
              '</s:Body></s:Envelope>')
    start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8")])
    return [answer.encode()]


def make_app(trusted_certs, clock=None):
    options = {{"clock": clock}} if clock is not None else {{}}
    return RelyingPartyMiddleware(greeter, audience=AUDIENCE, issuer=ISSUER, trusted_certs=trusted_certs, **options)
'''

CONFTEST = '''
from pathlib import Path

import pytest

from greeter import make_app
from wstrust_wsgi.testing import SoapTestApp

HERE = Path(__file__).parent


@pytest.fixture
def wstrust_audience():
    return "https://greeter.example.org/soap"


@pytest.fixture
def wstrust_issuer():
    return "https://sts.example.org/services/sts"


@pytest.fixture
def wstrust_users():
    return {{"alice": {{"password": "alice-pw", "roles": ["reader"]}}}}


@pytest.fixture
def service(wstrust_tokens, wstrust_clock):
    return SoapTestApp(make_app({trusted}, clock=wstrust_clock))
'''

TESTS = '''
import pytest

GREET = '<Greet xmlns="urn:greeter"/>'


def test_alice_is_greeted(service, wstrust_tokens):
    result = service.post_soap("/soap", GREET, token=wstrust_tokens.mint("alice", roles=["reader"]))
    assert result.body.text == "Hello alice"
    assert result.body.get("roles") == "reader"


def test_a_saml11_token_is_admitted_too(service, wstrust_tokens):
    assert service.post_soap("/soap", GREET, token=wstrust_tokens.mint("bob", version="1.1")).body.text == "Hello bob"


def test_a_token_from_the_sts(service, wstrust_client, wstrust_audience):
    token = wstrust_client.request_token(wstrust_audience)
    assert service.post_soap("/soap", GREET, token=token, soap_version="1.2").body.get("roles") == "reader"


def test_a_token_expires(service, wstrust_tokens, wstrust_clock):
    token = wstrust_tokens.mint("alice")
    service.post_soap("/soap", GREET, token=token)
    wstrust_clock.advance(minutes=11)
    service.post_soap("/soap", GREET, token=token, expect_fault="InvalidSecurityToken")


@pytest.mark.parametrize("variant", ["expired", "not_yet_valid", "wrong_audience", "wrong_issuer",
                                     "tampered", "unsigned", "untrusted"])
def test_a_bad_token_is_refused(service, wstrust_tokens, variant):
    refused = service.post_soap("/soap", GREET, token=getattr(wstrust_tokens, variant)(), expect_fault=True)
    assert refused.fault.reason


def test_no_token_no_greeting(service):
    service.post_soap("/soap", GREET, expect_fault="InvalidSecurity")
'''

GOOD = ["test_alice_is_greeted", "test_a_saml11_token_is_admitted_too", "test_a_token_from_the_sts",
        "test_a_token_expires"]


def _literal(text: str) -> str:
    """``text`` as an fnmatch pattern matching only itself (brackets are pattern syntax there)."""
    return re.sub(r"([\[\]*?])", r"[\1]", text)


def _project(pytester: pytest.Pytester, *, audience: str = "https://greeter.example.org/soap",
             trusted: str = "wstrust_tokens.trusted_certs") -> None:
    """Write the user's project: the service as deployed, its conftest and its tests."""
    pytester.makepyfile(greeter=SERVICE.format(audience=audience))
    pytester.makeconftest(CONFTEST.format(trusted=trusted))
    pytester.makepyfile(test_greeter=TESTS)
    pytester.syspathinsert()


def test_the_users_project_passes(pytester):
    _project(pytester)
    result = pytester.runpytest(*PLUGIN_ARGS)
    result.assert_outcomes(passed=12)


def test_a_service_expecting_another_audience_fails_the_users_tests_readably(pytester):
    _project(pytester, audience="https://greeter.example.org/soap/")  # the classic: a trailing slash
    result = pytester.runpytest(*PLUGIN_ARGS)
    result.assert_outcomes(passed=8, failed=4)
    for name in GOOD:
        result.stdout.fnmatch_lines([f"FAILED test_greeter.py::{name} - AssertionError*"])
    result.stdout.fnmatch_lines([
        "E *AssertionError: POST /soap: expected a result, the service answered a SOAP fault",
        "E *fault:      InvalidSecurityToken (*): 'The security token was not issued for this service.', "
        "HTTP 500",
        "E *server log: wstrust_wsgi.middleware: refused: InvalidSecurityToken: audiences "
        + _literal("['https://greeter.example.org/soap'] do not include ['https://greeter.example.org/soap/']")
        + " " + _literal("[check=audience expected=") + "*greeter.example.org/soap/* actual=*"
        + _literal("] (client -, request ") + "*)",
    ])
    assert "wstrust_wsgi/testing/testapp.py" not in result.stdout.str()  # the kit's frames are hidden


def test_a_service_trusting_another_certificate_fails_the_users_tests_readably(pytester):
    generate_demo_key_pair("the production STS", pytester.path, "production")
    _project(pytester, trusted='[HERE / "production.crt"]')  # the deployed certificate, not the kit's
    result = pytester.runpytest(*PLUGIN_ARGS)
    result.assert_outcomes(passed=8, failed=4)
    result.stdout.fnmatch_lines([
        "E *AssertionError: POST /soap: expected a result, the service answered a SOAP fault",
        "E *fault:      FailedCheck (*): *",
        "E *server log: wstrust_wsgi.middleware: refused: FailedCheck: signature did not verify with any "
        "trusted certificate: *",
    ])


def test_the_readme_example_runs_verbatim(pytester):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Testing your protected service"):]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "README's testing section has no python block"
    pytester.makepyfile(test_the_readme_example=code.group(1))  # not test_readme: tests/test_readme.py is imported
    result = pytester.runpytest(*PLUGIN_ARGS)
    result.assert_outcomes(passed=1)


def test_the_plugin_needs_no_webtest(pytester):
    pytester.makeconftest('import sys\nsys.modules["webtest"] = None  # as if WebTest were not installed\n')
    pytester.makepyfile(test_without_webtest='''
import pytest

def test_tokens_and_the_sts_work(wstrust_tokens, wstrust_client, wstrust_audience):
    assert wstrust_tokens.mint().assertion
    assert wstrust_client.request_token(wstrust_audience).assertion

def test_soap_test_app_says_what_to_install():
    with pytest.raises(ImportError, match=r"pip install 'wstrust-wsgi\\[test\\]'"):
        from wstrust_wsgi.testing import SoapTestApp
''')
    result = pytester.runpytest_subprocess(*PLUGIN_ARGS, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_every_fixture_is_prefixed_and_documented():
    fixtures = {name: value for name, value in vars(plugin).items() if hasattr(value, "_fixture_function_marker")
                or type(value).__name__ == "FixtureFunctionDefinition"}
    assert set(fixtures) == {"wstrust_audience", "wstrust_client", "wstrust_clock", "wstrust_issuer",
                             "wstrust_relying_parties", "wstrust_sts", "wstrust_tokens", "wstrust_users"}
    for name in fixtures:
        assert name in plugin.__doc__, name


def test_pyproject_registers_the_plugin_under_pytest11():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["pytest11"] == {"wstrust": PLUGIN_MODULE}
    assert any(requirement.startswith("webtest") for requirement in project["project"]["optional-dependencies"]["test"])


def _entry_point_shim(pytester: pytest.Pytester) -> None:
    """Install pyproject's pytest11 entry point as a distribution would, without reinstalling the package."""
    entry = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["pytest11"]
    dist = pytester.mkdir("site") / "wstrust_wsgi_entry_point_shim-0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: wstrust-wsgi-entry-point-shim\nVersion: 0\n")
    (dist / "entry_points.txt").write_text("[pytest11]\n" + "".join(f"{k} = {v}\n" for k, v in entry.items()))
    pytester.makepyfile(test_fixture='def test_fixture(wstrust_tokens):\n    assert wstrust_tokens.mint()\n')


def test_the_entry_point_loads_the_plugin_by_itself(pytester, monkeypatch):
    _entry_point_shim(pytester)
    monkeypatch.setenv("PYTHONPATH", f"{pytester.path / 'site'}:{ROOT}")
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_no_wstrust_turns_the_plugin_off(pytester, monkeypatch):
    _entry_point_shim(pytester)
    monkeypatch.setenv("PYTHONPATH", f"{pytester.path / 'site'}:{ROOT}")
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:wstrust")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'wstrust_tokens' not found*"])
