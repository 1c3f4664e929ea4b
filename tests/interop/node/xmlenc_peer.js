#!/usr/bin/env node
// Encrypt or decrypt with the npm `xml-encryption` package (Auth0's), a second XML Encryption peer.
//
//   node xmlenc_peer.js <spec.json>
//
// spec.json:
//   {"op": "encrypt", "input": "plain.xml", "certFile": "...pem",
//    "options": {"encryptionAlgorithm": "...", "keyEncryptionAlgorithm": "...", ...}}
//   {"op": "decrypt", "input": "encrypted.xml", "keyFile": "...pem", "options": {...}}
//
// `options` are passed to xmlenc.encrypt / xmlenc.decrypt as they are (e.g.
// disallowDecryptionWithInsecureAlgorithm: false for CBC); the key and certificate
// are added from the files. The result is printed on stdout exactly as the package
// returns it. Exit status: 0 done, 2 usage error or refusal (the message on stderr).
// `xml-encryption` is installed as a dependency of the `saml` package.
"use strict";

const fs = require("fs");
const xmlenc = require("xml-encryption");

function main(argv, done) {
  if (argv.length !== 1) {
    return done(new Error("usage: xmlenc_peer.js <spec.json>"));
  }
  const spec = JSON.parse(fs.readFileSync(argv[0], "utf8"));
  const input = fs.readFileSync(spec.input, "utf8");
  const options = Object.assign({ warnInsecureAlgorithm: false }, spec.options);
  if (spec.op === "encrypt") {
    options.pem = fs.readFileSync(spec.certFile);
    options.rsa_pub = require("crypto").createPublicKey(options.pem).export({ type: "spki", format: "pem" });
    return xmlenc.encrypt(input, options, done);
  }
  if (spec.op === "decrypt") {
    options.key = fs.readFileSync(spec.keyFile);
    return xmlenc.decrypt(input, options, done);
  }
  return done(new Error(`unknown op ${JSON.stringify(spec.op)}`));
}

try {
  main(process.argv.slice(2), (err, result) => {
    if (err) {
      process.stderr.write(`xmlenc_peer.js: ${err && err.message ? err.message : err}\n`);
      process.exitCode = 2;
      return;
    }
    process.stdout.write(Buffer.isBuffer(result) ? result : String(result));
  });
} catch (err) {
  process.stderr.write(`xmlenc_peer.js: ${err && err.stack ? err.stack : err}\n`);
  process.exitCode = 2;
}
