#!/usr/bin/env node
// Ask the STS for a token with the npm `wstrust-client` package, exactly as its README shows.
//
//   node wstrust_client.js '{"endpoint": "https://127.0.0.1:PORT/services/sts", "username": "admin",
//                           "password": "admin", "scope": "http://127.0.0.1:PORT/services/echo"}'
//
// The package posts one fixed RST (SOAP 1.2, WS-Trust 1.3, SAML 2.0 TokenType, PasswordText,
// wsa:Action and wsa:To with mustUnderstand) over https only, and cuts the token out of the answer
// by text: from the first '<Assertion ' to the first '</Assertion>'. It calls back once per chunk
// of the answer; the first call is reported. The STS's self-signed certificate is trusted through
// NODE_EXTRA_CA_CERTS. Prints one JSON line: {"ok", "status", "contentType", "token", "error"}.
// The process exits 0 whenever the exchange happened (a SOAP fault included); pytest decides.
'use strict';

const trustClient = require('wstrust-client');

function report(result) {
  process.stdout.write(JSON.stringify({ ok: false, status: null, contentType: null, token: null, error: null,
    ...result }) + '\n');
  process.exit(0);
}

function main() {
  const args = JSON.parse(process.argv[2]);
  const timer = setTimeout(() => report({ error: 'no answer within 20 s' }), 20000);
  trustClient.requestSecurityToken(args, (rstr) => {
    clearTimeout(timer);
    report({
      ok: true,
      status: rstr.response.statusCode,
      contentType: rstr.response.headers['content-type'] || null,
      token: rstr.token,
    });
  }, (error) => {
    clearTimeout(timer);
    report({ error: String((error && error.message) || error) });
  });
}

main();
