#!/usr/bin/env node
// Ask the STS for a token with the npm `soap` client, through the STS's own WSDL.
//
//   node issue_token.js '{"wsdl": "http://127.0.0.1:PORT/services/sts?wsdl", "username": "admin",
//                        "password": "admin", "passwordType": "PasswordText", "trust": "1.3",
//                        "soap": "1.1", "appliesTo": "http://...", "security": {...}}'
//
// `security` holds extra soap.WSSecurity options (hasTimeStamp, hasNonce, hasTokenCreated,
// mustUnderstand, ...). Prints one JSON line: {"ok", "status", "request", "response", "error"}.
// The process exits 0 whenever the exchange happened (a SOAP fault included); pytest decides.
'use strict';

const soap = require('soap');

const TRUST = {
  '1.3': {
    port: 'WSTrust13',
    ns: 'http://docs.oasis-open.org/ws-sx/ws-trust/200512',
    keyType: 'http://docs.oasis-open.org/ws-sx/ws-trust/200512/Bearer',
  },
  '2005': {
    port: 'WSTrustFeb2005',
    ns: 'http://schemas.xmlsoap.org/ws/2005/02/trust',
    keyType: 'http://schemas.xmlsoap.org/ws/2005/05/identity/NoProofKey',
  },
};

function escapeXml(text) {
  return String(text).replace(/[<>&"']/g, (c) => ({
    '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;',
  })[c]);
}

// The RST's children, as raw XML: the WSDL declares the RST's content as xs:any.
function rstChildren(trust, appliesTo) {
  const t = TRUST[trust];
  return (
    `<wst:RequestType xmlns:wst="${t.ns}">${t.ns}/Issue</wst:RequestType>` +
    '<wsp:AppliesTo xmlns:wsp="http://schemas.xmlsoap.org/ws/2004/09/policy">' +
    '<wsa:EndpointReference xmlns:wsa="http://www.w3.org/2005/08/addressing">' +
    `<wsa:Address>${escapeXml(appliesTo)}</wsa:Address>` +
    '</wsa:EndpointReference></wsp:AppliesTo>' +
    `<wst:KeyType xmlns:wst="${t.ns}">${t.keyType}</wst:KeyType>`
  );
}

async function main() {
  const args = JSON.parse(process.argv[2]);
  const soap12 = args.soap === '1.2';
  // The soap client does not take the SOAP version from the WSDL port: SOAP 1.2 needs
  // forceSoap12Headers (envelope namespace and Content-Type action parameter).
  const client = await soap.createClientAsync(args.wsdl, { forceSoap12Headers: soap12 });
  client.setSecurity(new soap.WSSecurity(args.username, args.password, {
    passwordType: args.passwordType,
    ...(args.security || {}),
  }));
  const portName = `${TRUST[args.trust].port}_Soap${soap12 ? '12' : '11'}`;
  const issue = client.SecurityTokenService[portName].Issue;
  const outcome = await new Promise((resolve) => {
    issue({ $xml: rstChildren(args.trust, args.appliesTo) }, (error, result, rawResponse) => {
      resolve({ error, rawResponse });
    }, { timeout: 20000 });
  });
  const response = outcome.error && outcome.error.body !== undefined ? outcome.error.body : outcome.rawResponse;
  const status = outcome.error && outcome.error.response ? outcome.error.response.status : 200;
  process.stdout.write(JSON.stringify({
    ok: !outcome.error,
    status,
    port: portName,
    request: client.lastRequest,
    response: typeof response === 'string' ? response : null,
    error: outcome.error ? String(outcome.error.message || outcome.error) : null,
  }) + '\n');
}

main().catch((error) => {
  process.stderr.write(`issue_token.js: ${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
