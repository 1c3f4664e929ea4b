"""Holder-of-key at the STS: SymmetricKey requests, P_SHA1, the RSTR's proof elements and the assertion's key.

P_SHA1 is checked against the public known answers of leandrob/node-psha1
(``tests/data/vectors/breadth/README.md``), the swapped order as a negative.
The RSTs are built by :class:`StsClient` (bearer) and given their
SymmetricKey elements with lxml; each answer is read back: the proof key the
client would hold must equal the key the relying party decrypts from the
assertion's EncryptedKey with its own private key.
"""

from __future__ import annotations

from base64 import b64decode, b64encode
from pathlib import Path

import pytest
import webtest
from lxml import etree

from _support import ISSUER, SERVICE_URL, FixedClock, KeyFiles, vector
from wstrust_wsgi import MemoryUserStore, RelyingParty, TokenService, ns
from wstrust_wsgi.wstrust import WSTRUST13, WSTRUST2005, dialect_of
from wstrust_wsgi.wstrust.proof import p_sha1, parse_proof_request, proof_key_of, request_elements
from wstrust_wsgi.errors import InvalidRequest
from wstrust_wsgi.xmlenc import Decrypter

CLIENT = b64decode("GS5olVevYMI4vW1Df/7FUpHcJJopTszp6sodlK4/rP8=")
SERVER = b64decode("LmF9Mjf9lYMa9YkxZDjaRFe6iMAfReKjzhLHDx376jA=")
TRUST = {"1.3": WSTRUST13, "2005": WSTRUST2005}
MEDIA = {"1.1": "text/xml", "1.2": "application/soap+xml"}


def test_p_sha1_known_answer_client_entropy_is_the_secret() -> None:
    assert b64encode(p_sha1(CLIENT, SERVER, 32)).decode() == "ZMOP1NFa5VKTQ8I2awGXDjzKP+686eujiangAgf5N+Q="


def test_p_sha1_swapped_secret_and_seed_is_another_key() -> None:
    swapped = p_sha1(SERVER, CLIENT, 32)
    assert b64encode(swapped).decode() == "XhgKIjUn7YaiLchcgQ+OljJKT/KpqSctWiqv9miX37A="
    assert swapped != p_sha1(CLIENT, SERVER, 32)


def test_p_sha1_longer_than_one_block_is_a_prefix_extension() -> None:
    assert p_sha1(CLIENT, SERVER, 64)[:32] == p_sha1(CLIENT, SERVER, 32)


def test_the_picketlink_symmetric_rst_shape_is_read() -> None:
    root = etree.parse(str(vector("breadth/picketlink_rst-symmetric-entropy-psha1.xml"))).getroot()
    rst = root if dialect_of(root) else next(el for el in root.iter() if dialect_of(el))
    request = parse_proof_request(rst)
    assert (request.kind, request.key_size, request.computed) == ("symmetric", 256, True)
    assert request.client_entropy is not None and len(request.client_entropy) == 32


@pytest.fixture(scope="module")
def rp_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    from wstrust_wsgi import generate_demo_key_pair
    directory = tmp_path_factory.mktemp("rp")
    generate_demo_key_pair("test rp", directory, "rp")
    return KeyFiles(directory / "rp.key", directory / "rp.crt")


@pytest.fixture
def sts(sts_keys: KeyFiles, rp_keys: KeyFiles, users: MemoryUserStore, clock: FixedClock) -> webtest.TestApp:
    cert = Path(rp_keys.cert).read_bytes()
    return webtest.TestApp(TokenService(
        issuer=ISSUER, signing_key=sts_keys.load(), users=users, clock=clock,
        relying_parties=[RelyingParty(SERVICE_URL, certificate_pem=cert, encryption="none"),  # the token in clear
                         RelyingParty("http://127.0.0.1:8083/nocert", token_type="1.1")]))


def symmetric_rst(make_client, trust: str, soap: str = "1.2", entropy: str = "both", key_size: int = 256,
                  applies_to: str = SERVICE_URL, token_type: str | None = None, digest: bool = False,
                  ) -> tuple[bytes, bytes | None]:  # type: ignore[no-untyped-def]
    client = make_client(soap_version=soap, trust_version=trust, digest=digest)
    body = client.build_request(applies_to, token_type=token_type)
    root = etree.fromstring(body)
    dialect = TRUST[trust]
    rst = next(el for el in root.iter() if dialect_of(el) is not None)
    rst.find(f"{{{dialect.namespace}}}KeyType").text = f"{dialect.namespace}/SymmetricKey"
    nonce = request_elements(rst, dialect, key_size=key_size, entropy=entropy)  # type: ignore[arg-type]
    return etree.tostring(root, xml_declaration=True, encoding="utf-8"), nonce


def post(app: webtest.TestApp, body: bytes, soap: str = "1.2", **extra: str) -> webtest.TestResponse:
    return app.post("/services/sts", body, content_type=f"{MEDIA[soap]}; charset=utf-8", expect_errors=True,
                    extra_environ=extra)


def rstr_and_assertion(response: webtest.TestResponse) -> tuple[etree._Element, etree._Element]:
    root = etree.fromstring(response.body)
    rstr = next(el for el in root.iter() if isinstance(el.tag, str) and el.tag.endswith("}RequestSecurityTokenResponse"))
    assertion = next(el for el in root.iter() if isinstance(el.tag, str) and el.tag.endswith("}Assertion"))
    return rstr, assertion


def key_in_assertion(assertion: etree._Element, rp_keys: KeyFiles) -> bytes:
    [encrypted_key] = {etree.tostring(e): e for e in assertion.iter(f"{{{ns.XENC}}}EncryptedKey")}.values()
    return Decrypter([rp_keys.load()]).unwrap(encrypted_key, sizes=range(16, 65))


@pytest.mark.parametrize("trust", ["1.3", "2005"])
@pytest.mark.parametrize("entropy", ["both", "client", "sts"])
@pytest.mark.parametrize("token_type", ["2.0", "1.1"])
def test_each_entropy_mode_gives_client_and_relying_party_the_same_key(
        sts, make_client, rp_keys, trust, entropy, token_type) -> None:  # type: ignore[no-untyped-def]
    body, nonce = symmetric_rst(make_client, trust, entropy=entropy, token_type=token_type)
    response = post(sts, body)
    assert response.status_int == 200, response.body
    rstr, assertion = rstr_and_assertion(response)
    t = TRUST[trust].namespace
    assert rstr.findtext(f"{{{t}}}KeyType") == f"{t}/SymmetricKey"
    assert rstr.findtext(f"{{{t}}}KeySize") == "256"
    proof = rstr.find(f"{{{t}}}RequestedProofToken")
    if entropy == "both":
        assert proof.findtext(f"{{{t}}}ComputedKey") == f"{t}/CK/PSHA1"
        server = b64decode(rstr.findtext(f"{{{t}}}Entropy/{{{t}}}BinarySecret"))
        assert len(server) == 32
    elif entropy == "sts":
        assert proof.find(f"{{{t}}}BinarySecret") is not None and rstr.find(f"{{{t}}}Entropy") is None
    else:
        assert proof is None and rstr.find(f"{{{t}}}Entropy") is None
    key = proof_key_of(rstr, nonce, 256)
    assert len(key) == 32 and key_in_assertion(assertion, rp_keys) == key
    if entropy == "both":
        assert key == p_sha1(nonce, server, 32) != p_sha1(server, nonce, 32)  # type: ignore[arg-type]
    if entropy == "client":
        assert key == nonce
    if token_type == "2.0":
        [confirmation] = assertion.iter(f"{{{ns.SAML2}}}SubjectConfirmation")
        assert confirmation.get("Method") == ns.SAML2_HOLDER_OF_KEY
        data = confirmation.find(f"{{{ns.SAML2}}}SubjectConfirmationData")
        assert data.get(f"{{{ns.XSI}}}type") == "KeyInfoConfirmationDataType"
        assert etree.QName(data.nsmap[None], "x").namespace == ns.SAML2  # the type's (default) namespace
    else:
        methods = {m.text for m in assertion.iter(f"{{{ns.SAML1}}}ConfirmationMethod")}
        assert methods == {ns.SAML1_HOLDER_OF_KEY}
    method = next(assertion.iter(f"{{{ns.XENC}}}EncryptionMethod"))
    assert method.get("Algorithm") == ns.ALG_RSA_OAEP_MGF1P


@pytest.mark.parametrize("bits", [128, 512])
def test_key_size_is_honoured_and_echoed(sts, make_client, rp_keys, bits) -> None:  # type: ignore[no-untyped-def]
    body, nonce = symmetric_rst(make_client, "1.3", key_size=bits)
    rstr, assertion = rstr_and_assertion(post(sts, body))
    assert rstr.findtext(f"{{{ns.WST13}}}KeySize") == str(bits)
    assert len(proof_key_of(rstr, nonce, bits)) == bits // 8 == len(key_in_assertion(assertion, rp_keys))


def fault_reason(response: webtest.TestResponse) -> str:
    return "".join(etree.fromstring(response.body).itertext())


@pytest.mark.parametrize(("change", "reason"), [
    ("KeySize=64", "wst:KeySize must be a multiple of 8 from 128 to 512."),
    ("KeySize=1024", "wst:KeySize must be a multiple of 8 from 128 to 512."),
    ("short-nonce", "The client entropy is shorter than the 256-bit key."),
    ("other-algorithm", "Only the ComputedKeyAlgorithm"),
    ("no-certificate", "The relying party has no certificate registered"),
    ("public-key", "A PublicKey request must name its key in wst:UseKey, or be signed with a registered X.509"),
])
def test_refusals_are_invalid_request_with_a_clear_reason(sts, make_client, change, reason) -> None:  # type: ignore[no-untyped-def]
    applies = "http://127.0.0.1:8083/nocert" if change == "no-certificate" else SERVICE_URL
    body, _ = symmetric_rst(make_client, "1.3", applies_to=applies)
    root = etree.fromstring(body)
    t = ns.WST13
    if change.startswith("KeySize"):
        root.find(f".//{{{t}}}KeySize").text = change.split("=")[1]
    elif change == "short-nonce":
        root.find(f".//{{{t}}}BinarySecret").text = b64encode(b"x" * 16).decode()
    elif change == "other-algorithm":
        root.find(f".//{{{t}}}ComputedKeyAlgorithm").text = f"{t}/CK/HASH"
    elif change == "public-key":
        root.find(f".//{{{t}}}KeyType").text = f"{t}/PublicKey"
    response = post(sts, etree.tostring(root))
    assert response.status_int == 400 and "InvalidRequest" in fault_reason(response)
    assert reason in fault_reason(response)


def test_a_key_made_by_the_sts_alone_is_sent_only_over_tls_or_loopback(sts, make_client) -> None:  # type: ignore[no-untyped-def]
    body, _ = symmetric_rst(make_client, "1.3", entropy="sts", digest=True)  # PasswordText needs TLS anyway
    refused = post(sts, body, REMOTE_ADDR="203.0.113.9")
    assert refused.status_int == 400 and "only over TLS" in fault_reason(refused)
    body, _ = symmetric_rst(make_client, "1.3", entropy="sts", digest=True)  # a fresh nonce
    assert post(sts, body, REMOTE_ADDR="203.0.113.9", **{"wsgi.url_scheme": "https"}).status_int == 200
    body, _ = symmetric_rst(make_client, "1.3", entropy="both", digest=True)
    assert post(sts, body, REMOTE_ADDR="203.0.113.9").status_int == 200  # ComputedKey: the key never travels


def test_bearer_requests_are_unchanged(sts, make_client) -> None:  # type: ignore[no-untyped-def]
    body = make_client().build_request(SERVICE_URL)
    rstr, assertion = rstr_and_assertion(post(sts, body))
    assert rstr.find(f"{{{ns.WST13}}}RequestedProofToken") is None and rstr.find(f"{{{ns.WST13}}}KeySize") is None
    [confirmation] = assertion.iter(f"{{{ns.SAML2}}}SubjectConfirmation")
    assert confirmation.get("Method") == ns.SAML2_BEARER


@pytest.mark.parametrize(("allowed", "asked", "admitted"), [
    (frozenset({"symmetric"}), "symmetric", True),
    (frozenset({"symmetric"}), "bearer", False),
    (frozenset({"bearer"}), "symmetric", False),
    (None, "bearer", True),
])
def test_a_relying_party_limits_the_key_types_of_its_tokens(sts_keys, rp_keys, users, clock, make_client,
                                                             allowed, asked, admitted) -> None:  # type: ignore[no-untyped-def]
    app = webtest.TestApp(TokenService(
        issuer=ISSUER, signing_key=sts_keys.load(), users=users, clock=clock,
        relying_parties=[RelyingParty(SERVICE_URL, certificate_pem=Path(rp_keys.cert).read_bytes(),
                                      encryption="none", key_types=allowed)]))
    body = (symmetric_rst(make_client, "1.3")[0] if asked == "symmetric"
            else make_client().build_request(SERVICE_URL))
    response = post(app, body)
    assert (response.status_int == 200) is admitted, response.body
    if not admitted:
        assert "The relying party accepts only these key types: " + ", ".join(sorted(allowed)) in fault_reason(
            response)


def test_the_registry_keeps_a_partys_key_types(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from wstrust_wsgi.stores.sql import Registry
    from wstrust_wsgi import ConfigurationError
    with Registry.open(f"sqlite://{tmp_path}/registry.db") as registry:
        registry.init_schema(issuer=ISSUER)
        registry.add_relying_party(RelyingParty(SERVICE_URL, key_types=frozenset({"symmetric", "public"})))
        registry.add_relying_party(RelyingParty("https://other.example/soap"))
        assert registry.get(SERVICE_URL).key_types == frozenset({"symmetric", "public"})  # type: ignore[union-attr]
        assert registry.get("https://other.example/soap").key_types is None  # type: ignore[union-attr]
        with pytest.raises(ConfigurationError, match="'secret' is not one of bearer, symmetric, public"):
            registry.add_relying_party(RelyingParty("https://third.example/soap", key_types=frozenset({"secret"})))


def _first(path: str, local: str) -> etree._Element:
    root = etree.parse(str(vector(path))).getroot()
    return next(el for el in root.iter() if isinstance(el.tag, str) and etree.QName(el).localname == local)


def test_the_real_feb_2005_symmetric_rst_shape_is_read() -> None:
    """WIF's DAuth RST: SymmetricKey, KeySize 256, CK/PSHA1, no Entropy (the STS makes the key)."""
    request = parse_proof_request(_first("breadth/identitymodel-dotnet_dauth-rst-symmetric-onbehalfof.xml",
                                         "RequestSecurityToken"))
    assert (request.kind, request.key_size, request.computed, request.client_entropy) == ("symmetric", 256, True,
                                                                                         None)


def test_the_real_rstr_proof_token_shapes_give_their_keys() -> None:
    """The Microsoft gateway's RSTR: a 24-byte BinarySecret for 256 bits asked and no KeySize, so the key is
    the secret as sent; PicketLink's: ComputedKey with the STS entropy and KeySize 128."""
    dauth = _first("breadth/identitymodel-dotnet_dauth-rstr-symmetric-encrypted-saml11.xml",
                   "RequestSecurityTokenResponse")
    assert proof_key_of(dauth, None, 256) == b64decode("5p76ToaxZXMFm4W6fmCcFXfDPd9WgJIM")
    picketlink = _first("breadth/picketlink_rstr-hok-symmetric-computedkey.xml", "RequestSecurityTokenResponse")
    ours = bytes(range(16))
    assert proof_key_of(picketlink, ours, 256) == p_sha1(ours, b64decode("dSRCR4Abu6c="), 16)


# PublicKey: the forms of wst:UseKey as other clients write them (sts/proof.py reads each to one key)

def _use_key_of(xml: str) -> etree._Element:
    return etree.fromstring(f'<wst:UseKey xmlns:wst="{ns.WST13}" xmlns:ds="{ns.DS}" xmlns:wsse="{ns.WSSE}" '
                            f'xmlns:wsu="{ns.WSU}">{xml}</wst:UseKey>')


def test_the_picketlink_key_value_straight_in_use_key_is_read_as_a_bare_key() -> None:
    from wstrust_wsgi.sts.proof import _use_key
    root = etree.parse(str(vector("breadth/picketlink_rst-publickey-usekey-keyvalue.xml"))).getroot()
    request = parse_proof_request(root)
    assert request.kind == "public" and request.use_key is not None
    bound = _use_key(request.use_key, root, None)
    assert bound.certificate is None and bound.key.key_size == 1024  # then refused: under 2048 bits


def test_a_binary_security_token_or_a_reference_straight_in_use_key_is_read(sts_keys: KeyFiles) -> None:
    from wstrust_wsgi.sts.proof import _use_key
    from wstrust_wsgi.xmldsig import certificate_base64
    certificate = sts_keys.load().certificate
    direct = _use_key(_use_key_of(f'<wsse:BinarySecurityToken ValueType="{ns.WSSE_X509V3}">'
                                  f'{certificate_base64(certificate)}</wsse:BinarySecurityToken>'), etree.Element("x"),
                      None)
    assert direct.certificate == certificate
    envelope = etree.fromstring(
        f'<s:Envelope xmlns:s="{ns.SOAP12}"><s:Header><wsse:Security xmlns:wsse="{ns.WSSE}" xmlns:wsu="{ns.WSU}">'
        f'<wsse:BinarySecurityToken ValueType="{ns.WSSE_X509V3}" wsu:Id="cert">{certificate_base64(certificate)}'
        f'</wsse:BinarySecurityToken></wsse:Security></s:Header><s:Body/></s:Envelope>')
    security = envelope[0][0]
    use_key = _use_key_of('<wsse:SecurityTokenReference><wsse:Reference URI="#cert"/></wsse:SecurityTokenReference>')
    assert _use_key(use_key, envelope, security).certificate == certificate
    for wrong in ('<wsse:SecurityTokenReference><wsse:Reference URI="cert"/></wsse:SecurityTokenReference>',
                  '<wsse:SecurityTokenReference><wsse:Reference URI="#cert" ValueType="urn:other"/>'
                  '</wsse:SecurityTokenReference>',
                  '<ds:KeyName>cert</ds:KeyName>'):
        with pytest.raises(InvalidRequest) as refused:
            _use_key(_use_key_of(wrong), envelope, security)
        assert refused.value.reason.startswith("wst:UseKey must name one RSA key"), wrong
