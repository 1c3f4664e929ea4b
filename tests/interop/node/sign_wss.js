#!/usr/bin/env node
// Sign a SOAP request the WS-Security way with xml-crypto, as a Node holder-of-key client
// would: a ds:Signature appended to wsse:Security over the soap Body and the wsu:Timestamp
// (wsu:Id references, exclusive c14n), KeyInfo a SecurityTokenReference to the SAML token.
// With "keyBase64" (a SymmetricKey token's proof key): HMAC-SHA1; with "keyFile" (the client's
// PEM RSA private key, a PublicKey token): RSA-SHA256.
//
//   node sign_wss.js <spec.json>
//
// spec.json: {"envelopeFile": "...xml", "keyBase64": "..." | "keyFile": "...pem", "tokenId": "_a1",
//             "tokenType": "...#SAMLV2.0", "valueType": "...#SAMLID"}
// The signed envelope is printed on stdout. Exit status: 0 signed, 2 usage or signing error.
"use strict";

const fs = require("fs");
const { SignedXml } = require("xml-crypto");

const WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
const WSSE11 = "http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd";
const EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#";

function main(argv) {
  if (argv.length !== 1) {
    process.stderr.write("usage: sign_wss.js <spec.json>\n");
    return 2;
  }
  const spec = JSON.parse(fs.readFileSync(argv[0], "utf8"));
  const xml = fs.readFileSync(spec.envelopeFile, "utf8");
  const rsa = spec.keyFile !== undefined;
  const sig = new SignedXml({
    idMode: "wssecurity",
    privateKey: rsa ? fs.readFileSync(spec.keyFile) : Buffer.from(spec.keyBase64, "base64"),
    signatureAlgorithm: rsa ? "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
                            : "http://www.w3.org/2000/09/xmldsig#hmac-sha1",
    canonicalizationAlgorithm: EXC_C14N,
  });
  if (!rsa) {
    sig.enableHMAC();
  }
  sig.getKeyInfoContent = () =>
    `<wsse:SecurityTokenReference xmlns:wsse="${WSSE}" xmlns:wsse11="${WSSE11}" wsse11:TokenType="${spec.tokenType}">` +
    `<wsse:KeyIdentifier ValueType="${spec.valueType}">${spec.tokenId}</wsse:KeyIdentifier>` +
    "</wsse:SecurityTokenReference>";
  for (const local of ["Body", "Timestamp"]) {
    sig.addReference({
      xpath: `//*[local-name()='${local}']`,
      transforms: [EXC_C14N],
      digestAlgorithm: "http://www.w3.org/2001/04/xmlenc#sha256",
    });
  }
  sig.computeSignature(xml, { location: { reference: "//*[local-name()='Security']", action: "append" } });
  process.stdout.write(sig.getSignedXml());
  return 0;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`sign_wss.js: ${err && err.stack ? err.stack : err}\n`);
  process.exitCode = 2;
}
