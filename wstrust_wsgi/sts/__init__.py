"""The Security Token Service: a WSGI app answering WS-Trust requests with signed SAML tokens.

Modelled on WSO2 Identity Server's STS: secured with a UsernameToken policy,
only users holding an allowed role (``admin`` by default) get tokens, and
relying parties are registered by endpoint address, which the client names in
``wsp:AppliesTo`` and which becomes the token's audience.

* :mod:`.service`: :class:`TokenService`, the WSGI app, and its registry of bindings;
* :mod:`.authentication`: who is asking (UsernameToken, PasswordText rule, roles);
* :mod:`.binding`: what a binding receives (:class:`TrustCall`) and keeps (:class:`Binding`);
* :mod:`.issue`: the Issue binding, registered by every TokenService;
* :mod:`.validate`, :mod:`.renew`, :mod:`.cancel`: the bindings registered
  with an issued-token store, and :mod:`.lifecycle`, what they share (the
  store, :class:`TokenPolicy`, checking a named token as the middleware does);
* :mod:`.wsdl`: the WSDL with its WS-SecurityPolicy, served at ``?wsdl``;
* :mod:`.signing`: the signing keys as they roll (the primary signs, re-read every second);
* :mod:`.published`: the federation metadata, served by GET with ETag and Last-Modified;
* :mod:`.mex`: WS-MetadataExchange at ``<sts>/mex`` (GET, and WS-Transfer Get);
* :mod:`.keyring`: the registry's rolling signing keys as the STS reads them.

Registering a binding
---------------------
A binding answers the RequestType URIs it names, one per WS-Trust version,
the way authlib registers grant types by ``grant_type``. Validate, Renew and
Cancel joined like this (``TokenService(issued_tokens=...)`` registers them)::

    from wstrust_wsgi.sts import TrustCall, binding_uris

    class ValidateBinding:
        request_types, actions = binding_uris("Validate")   # 1.3 and 2005 URIs

        def answer(self, call: TrustCall) -> bytes:
            ...  # read call.rst, build the whole SOAP response in call.dialect
            return envelope_bytes

    sts = TokenService(...)
    sts.register_binding(ValidateBinding())

The STS has done every common check before ``answer`` runs: the envelope,
mustUnderstand, the action (if sent) is one of the binding's ``actions``, the
body is an RST of a known dialect, and the caller is authenticated and holds
an allowed role (``call.principal``). A RequestType no binding names is
answered ``wst:InvalidRequest``; a URI registered twice is a
:class:`~wstrust_wsgi.errors.ConfigurationError`.
"""

from __future__ import annotations

from .binding import Binding, TrustCall
from .binding import uris as binding_uris
from .cancel import CancelBinding
from .delegation import DelegationPolicy
from .issue import IssueBinding
from .lifecycle import TokenPolicy
from .renew import RenewBinding
from .service import TokenService
from .validate import ValidateBinding

__all__ = ["Binding", "CancelBinding", "DelegationPolicy", "IssueBinding", "RenewBinding", "TokenPolicy", "TokenService", "TrustCall",
           "ValidateBinding", "binding_uris"]
