#!/usr/bin/env node
// Verify the enveloped XML-DSig signature of a SAML assertion with xml-crypto,
// trusting ONLY the pinned certificate given on the command line.
//
//   node verify_xmlcrypto.js <assertion.xml> <pinned-cert.pem>
//
// The certificate in ds:KeyInfo is ignored: getCertFromKeyInfo returns null,
// so xml-crypto falls back to publicCert (the pinned one). Prints one JSON
// object on stdout:
//   {"valid": bool, "error": string|null, "root": "<ns> <local>", "rootId": ...,
//    "referenceUris": [...], "signedReferences": [canonical XML, ...]}
// Exit status: 0 valid, 1 invalid, 2 usage or I/O error.
"use strict";

const fs = require("fs");
const { DOMParser } = require("@xmldom/xmldom");
const xpath = require("xpath");
const { SignedXml } = require("xml-crypto");

const DEFAULT_ID_ATTRIBUTES = ["Id", "ID", "id"];
const DSIG = "http://www.w3.org/2000/09/xmldsig#";
const ID_ATTRIBUTES = { "urn:oasis:names:tc:SAML:2.0:assertion": "ID", "urn:oasis:names:tc:SAML:1.0:assertion": "AssertionID" };

function main(argv) {
  if (argv.length !== 2) {
    process.stderr.write("usage: verify_xmlcrypto.js <assertion.xml> <pinned-cert.pem>\n");
    return 2;
  }
  let xml, pinned;
  try {
    xml = fs.readFileSync(argv[0], "utf8");
    pinned = fs.readFileSync(argv[1], "utf8");
  } catch (err) {
    process.stderr.write(String(err) + "\n");
    return 2;
  }
  const verdict = { valid: false, error: null, root: null, rootId: null, referenceUris: [], signedReferences: [] };
  try {
    const doc = new DOMParser().parseFromString(xml, "text/xml");
    const root = doc.documentElement;
    const idAttribute = ID_ATTRIBUTES[root.namespaceURI];
    verdict.root = `${root.namespaceURI} ${root.localName}`;
    verdict.rootId = idAttribute ? root.getAttribute(idAttribute) : null;
    // Only the assertion's own ds:Signature child counts (enveloped signature).
    const signatures = xpath.select("./*[local-name()='Signature' and namespace-uri()='" + DSIG + "']", root);
    if (signatures.length !== 1) {
      throw new Error(`expected exactly one ds:Signature child of the root, found ${signatures.length}`);
    }
    const sig = new SignedXml({
      publicCert: pinned,
      getCertFromKeyInfo: () => null, // never trust the certificate the message carries
      // xml-crypto already looks at Id/ID/id; naming "ID" again would make it count
      // the SAML 2.0 assertion twice and refuse it as a wrapping attack.
      idAttribute: DEFAULT_ID_ATTRIBUTES.includes(idAttribute) ? undefined : idAttribute,
    });
    sig.loadSignature(signatures[0]);
    verdict.referenceUris = sig.getReferences().map((ref) => ref.uri);
    verdict.valid = sig.checkSignature(xml) === true;
    verdict.signedReferences = sig.getSignedReferences();
    if (!verdict.valid) verdict.error = "checkSignature returned false";
  } catch (err) {
    verdict.valid = false;
    verdict.error = err && err.message ? err.message : String(err);
  }
  process.stdout.write(JSON.stringify(verdict) + "\n");
  return verdict.valid ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));
