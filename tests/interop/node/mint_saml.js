#!/usr/bin/env node
// Mint a signed SAML assertion with the npm `saml` package (node-saml, Auth0).
//
//   node mint_saml.js <spec.json>
//
// spec.json:
//   {"version": "2.0" | "1.1",
//    "keyFile": "...pem", "certFile": "...pem",
//    "now": "2026-01-01T00:00:00Z",          // the minting instant (optional)
//    "encryptionCertFile": "...pem",           // encrypt for this certificate (optional)
//    "holderOfKeyProofSecretBase64": "...",    // with options.subjectConfirmationMethod "holder-of-key"
//    "options": {...}}                          // passed to saml20.create / saml11.create
//
// `now` pins the package's clock (it reads moment.utc()) so that tests can
// line its IssueInstant / NotBefore / NotOnOrAfter up with their own clock.
// The signed assertion is printed on stdout, exactly as the package returns it. With
// `encryptionCertFile`, the package's own encryption (`encryptionCert`, `encryptionPublicKey`;
// its xml-encryption dependency) turns it into a saml:EncryptedAssertion (SAML 2.0).
// Exit status: 0 minted, 2 usage or minting error.
"use strict";

const fs = require("fs");
const moment = require("moment");
const { Saml11, Saml20 } = require("saml");

function main(argv, done) {
  if (argv.length !== 1) {
    process.stderr.write("usage: mint_saml.js <spec.json>\n");
    return 2;
  }
  const spec = JSON.parse(fs.readFileSync(argv[0], "utf8"));
  const creators = { "2.0": Saml20, "1.1": Saml11 };
  const creator = creators[spec.version];
  if (!creator) {
    process.stderr.write(`unknown SAML version ${JSON.stringify(spec.version)}\n`);
    return 2;
  }
  if (spec.now) {
    const fixed = Date.parse(spec.now);
    if (Number.isNaN(fixed)) {
      process.stderr.write(`bad "now": ${spec.now}\n`);
      return 2;
    }
    moment.now = () => fixed;
  }
  const options = Object.assign({}, spec.options, {
    key: fs.readFileSync(spec.keyFile),
    cert: fs.readFileSync(spec.certFile),
  });
  if (spec.holderOfKeyProofSecretBase64) {  // SAML 1.1 holder-of-key: the proof key the test signs with
    options.holderOfKeyProofSecret = Buffer.from(spec.holderOfKeyProofSecretBase64, "base64");
  }
  if (spec.encryptionCertFile) {
    options.encryptionCert = fs.readFileSync(spec.encryptionCertFile);
    options.encryptionPublicKey = require("crypto").createPublicKey(options.encryptionCert)
      .export({ type: "spki", format: "pem" });
    creator.create(options, (err, result) => {
      if (err) {
        process.stderr.write(`mint_saml.js: ${err && err.message ? err.message : err}\n`);
        done(2);
        return;
      }
      process.stdout.write(result);
      done(0);
    });
    return undefined;
  }
  process.stdout.write(creator.create(options));
  return 0;
}

try {
  const status = main(process.argv.slice(2), (code) => { process.exitCode = code; });
  if (status !== undefined) {
    process.exitCode = status;
  }
} catch (err) {
  process.stderr.write(`mint_saml.js: ${err && err.stack ? err.stack : err}\n`);
  process.exitCode = 2;
}
