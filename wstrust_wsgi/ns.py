"""Namespace URIs and well-known identifiers, as flat constants.

Every URI the package reads or writes lives here, so a reader can check one
file against the specifications (SOAP 1.1/1.2, WS-Addressing, WS-Policy,
WS-Security 1.0/1.1 and its SAML token profile, WS-Trust 1.3 and February 2005,
SAML 1.1 and 2.0, XML-DSig).
"""

from __future__ import annotations

# SOAP
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"

# WS-Addressing
WSA10 = "http://www.w3.org/2005/08/addressing"
WSA04 = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSA_ANONYMOUS = "http://www.w3.org/2005/08/addressing/anonymous"

# WS-Policy
WSP12 = "http://schemas.xmlsoap.org/ws/2004/09/policy"
WSP15 = "http://www.w3.org/ns/ws-policy"

# WS-Security 1.0 / 1.1
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSSE11 = "http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
WSSE_PASSWORD_TEXT = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
)
WSSE_PASSWORD_DIGEST = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
)
WSSE_BASE64 = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)

# WS-Security SAML Token Profile 1.1: token types and key identifier value types
SAML11_TOKEN_PROFILE_TYPE = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV1.1"
SAML20_TOKEN_PROFILE_TYPE = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV2.0"
SAML11_KEYID_VALUE_TYPE = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.0#SAMLAssertionID"
SAML20_KEYID_VALUE_TYPE = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLID"

# WS-Trust
WST13 = "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
WST2005 = "http://schemas.xmlsoap.org/ws/2005/02/trust"
WST14 = "http://docs.oasis-open.org/ws-sx/ws-trust/200802"
WST2005_NO_PROOF_KEY = "http://schemas.xmlsoap.org/ws/2005/05/identity/NoProofKey"
WST14_BEARER = "http://docs.oasis-open.org/ws-sx/wstrust/200802/Bearer"

# SAML
SAML1 = "urn:oasis:names:tc:SAML:1.0:assertion"
SAML2 = "urn:oasis:names:tc:SAML:2.0:assertion"
SAML1_BEARER = "urn:oasis:names:tc:SAML:1.0:cm:bearer"
SAML2_BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
SAML1_HOLDER_OF_KEY = "urn:oasis:names:tc:SAML:1.0:cm:holder-of-key"
SAML2_HOLDER_OF_KEY = "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key"
SAML1_AM_PASSWORD = "urn:oasis:names:tc:SAML:1.0:am:password"
SAML2_AC_PASSWORD = "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"
SAML2_AC_PPT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
SAML_NAMEID_UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
SAML2_ATTRNAME_URI = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"

# XML Signature and friends
DS = "http://www.w3.org/2000/09/xmldsig#"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XS = "http://www.w3.org/2001/XMLSchema"
XML = "http://www.w3.org/XML/1998/namespace"

DSIG11 = "http://www.w3.org/2009/xmldsig11#"

# XML-DSig 1.1 section 6 and RFC 6931 algorithm identifiers
ALG_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
ALG_EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ALG_RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ALG_RSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
ALG_RSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
ALG_RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
ALG_HMAC_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"
ALG_HMAC_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha384"
ALG_HMAC_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha512"
ALG_HMAC_SHA1 = "http://www.w3.org/2000/09/xmldsig#hmac-sha1"
ALG_SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
ALG_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384"
ALG_SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"
ALG_SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
# Not a W3C URI: the OAEP DigestMethod the npm xml-encryption package writes for SHA-256 (it prefixes
# the digest's name with xmldsig#); read on decryption only (see wstrust_wsgi.xmlenc), never written.
ALG_SHA256_XMLENC_NPM = "http://www.w3.org/2000/09/xmldsig#sha256"

# Claim type used for roles, as WIF and AD FS name it.
CLAIM_ROLE = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
#: wst:Claims dialects: the identity (Information Card) dialect, its claim URIs' prefix, and WSO2's.
CLAIMS_IDENTITY = "http://schemas.xmlsoap.org/ws/2005/05/identity"
IDENTITY_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
CLAIMS_WSO2 = "http://wso2.org/claims"
#: ActAs: the actor attribute (WIF's claim type) and SAML 2.0's DelegationRestriction condition (sstc-saml-delegation).
CLAIM_ACTOR = "http://schemas.xmlsoap.org/ws/2009/09/identity/claims/actor"
SAML2_DELEGATION = "urn:oasis:names:tc:SAML:2.0:conditions:delegation"

# SOAP roles that address the ultimate receiver (SOAP 1.1 section 4.2.2, SOAP 1.2 part 1 section 2.2)
SOAP11_ACTOR_NEXT = "http://schemas.xmlsoap.org/soap/actor/next"
SOAP12_ROLE_NEXT = "http://www.w3.org/2003/05/soap-envelope/role/next"
SOAP12_ROLE_ULTIMATE_RECEIVER = "http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver"

# WSDL 1.1 and the policy vocabularies the STS's WSDL uses
WSDL = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP11 = "http://schemas.xmlsoap.org/wsdl/soap/"
WSDL_SOAP12 = "http://schemas.xmlsoap.org/wsdl/soap12/"
WSAM = "http://www.w3.org/2007/05/addressing/metadata"
SOAP_HTTP_TRANSPORT = "http://schemas.xmlsoap.org/soap/http"
SP12 = "http://docs.oasis-open.org/ws-sx/ws-securitypolicy/200702"
SP11 = "http://schemas.xmlsoap.org/ws/2005/07/securitypolicy"

# XML Encryption 1.0 / 1.1 (https://www.w3.org/TR/xmlenc-core1/ section 5): structure and algorithms
XENC = "http://www.w3.org/2001/04/xmlenc#"
XENC11 = "http://www.w3.org/2009/xmlenc11#"
XENC_TYPE_ELEMENT = "http://www.w3.org/2001/04/xmlenc#Element"
XENC_TYPE_ENCRYPTED_KEY = "http://www.w3.org/2001/04/xmlenc#EncryptedKey"
ALG_AES128_GCM = "http://www.w3.org/2009/xmlenc11#aes128-gcm"
ALG_AES256_GCM = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
ALG_AES128_CBC = "http://www.w3.org/2001/04/xmlenc#aes128-cbc"
ALG_AES256_CBC = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"
ALG_TRIPLEDES_CBC = "http://www.w3.org/2001/04/xmlenc#tripledes-cbc"
ALG_RSA_OAEP_MGF1P = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
ALG_RSA_OAEP = "http://www.w3.org/2009/xmlenc11#rsa-oaep"
ALG_RSA_1_5 = "http://www.w3.org/2001/04/xmlenc#rsa-1_5"
ALG_MGF1_SHA1 = "http://www.w3.org/2009/xmlenc11#mgf1sha1"
ALG_MGF1_SHA256 = "http://www.w3.org/2009/xmlenc11#mgf1sha256"

# WS-Security X.509 Token Profile 1.1 key identifiers (section 3.2), as an EncryptedKey names its certificate
WSSE_X509_SKI = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509SubjectKeyIdentifier"
)
WSSE_THUMBPRINT_SHA1 = "http://docs.oasis-open.org/wss/oasis-wss-soap-message-security-1.1#ThumbprintSHA1"
# A BinarySecurityToken holding one DER X.509 certificate (X.509 Token Profile 1.1 section 3.1), base64 encoded
WSSE_X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
WSSE_BASE64 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"

# Federation metadata (SAML 2.0 metadata with WS-Federation 1.2 roles) and WS-MetadataExchange
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
FED = "http://docs.oasis-open.org/wsfed/federation/200706"
FED_AUTH = "http://docs.oasis-open.org/wsfed/authorization/200706"
WSX = "http://schemas.xmlsoap.org/ws/2004/09/mex"
WSX_DIALECT_WSDL = "http://schemas.xmlsoap.org/wsdl/"
WS_TRANSFER_GET = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get"
WS_TRANSFER_GET_RESPONSE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/GetResponse"
