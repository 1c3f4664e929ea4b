// Sign a SOAP request with the client's own RSA key the way WSS4J does for a PublicKey holder-of-key
// token (the Debian libwss4j-java package, 1.6): WSSecSignature taking the private key from a Crypto
// (a Merlin over an in-memory key store holding the PEM key and certificate), a custom KeyIdentifier
// naming the SAML token (#SAMLID or #SAMLAssertionID), over the Body and the wsu:Timestamp, with the
// given signature method and SHA-256 digests. Prints the signed envelope.
//
//   java -cp <wss4j, xmlsec, commons-logging, slf4j-api, commons-codec jars> WssRsaSign.java \
//        ENVELOPE_FILE KEY_PEM CERT_PEM TOKEN_ID VALUE_TYPE SIGNATURE_ALGORITHM
import java.io.File;
import java.io.FileInputStream;
import java.nio.file.Files;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.transform.TransformerFactory;
import javax.xml.transform.dom.DOMSource;
import javax.xml.transform.stream.StreamResult;
import org.apache.ws.security.WSConstants;
import org.apache.ws.security.WSEncryptionPart;
import org.apache.ws.security.components.crypto.Merlin;
import org.apache.ws.security.message.WSSecHeader;
import org.apache.ws.security.message.WSSecSignature;
import org.w3c.dom.Document;

public class WssRsaSign {
    private static final String ALIAS = "client";
    private static final String PASSWORD = "unused-in-memory";

    /** The PKCS#8 RSA key of a PEM file ("-----BEGIN PRIVATE KEY-----", as generate_demo_key_pair writes). */
    static PrivateKey readKey(String path) throws Exception {
        String pem = new String(Files.readAllBytes(new File(path).toPath()), "US-ASCII");
        String base64 = pem.replaceAll("-----[A-Z ]+-----", "").replaceAll("\\s", "");
        return KeyFactory.getInstance("RSA").generatePrivate(new PKCS8EncodedKeySpec(Base64.getDecoder().decode(base64)));
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 6) {
            System.err.println("usage: WssRsaSign.java ENVELOPE KEY_PEM CERT_PEM TOKEN_ID VALUE_TYPE SIGNATURE_ALGORITHM");
            System.exit(2);
        }
        org.apache.xml.security.Init.init();
        Certificate certificate;
        try (FileInputStream in = new FileInputStream(args[2])) {
            certificate = CertificateFactory.getInstance("X.509").generateCertificate(in);
        }
        KeyStore store = KeyStore.getInstance("PKCS12");
        store.load(null, null);
        store.setKeyEntry(ALIAS, readKey(args[1]), PASSWORD.toCharArray(), new Certificate[] {certificate});
        Merlin crypto = new Merlin();
        crypto.setKeyStore(store);

        DocumentBuilderFactory factory = DocumentBuilderFactory.newInstance();
        factory.setNamespaceAware(true);
        Document doc = factory.newDocumentBuilder().parse(new File(args[0]));
        WSSecHeader header = new WSSecHeader();
        header.insertSecurityHeader(doc);  // finds the request's own wsse:Security
        WSSecSignature signature = new WSSecSignature();
        signature.setUserInfo(ALIAS, PASSWORD);  // no secret key set: WSS4J asks the Crypto for this private key
        signature.setKeyIdentifierType(WSConstants.CUSTOM_KEY_IDENTIFIER);
        signature.setCustomTokenValueType(args[4]);
        signature.setCustomTokenId(args[3]);
        signature.setSignatureAlgorithm(args[5]);
        signature.setDigestAlgo("http://www.w3.org/2001/04/xmlenc#sha256");
        List<WSEncryptionPart> parts = new ArrayList<>();
        parts.add(new WSEncryptionPart("Body", doc.getDocumentElement().getNamespaceURI(), "Content"));
        parts.add(new WSEncryptionPart("Timestamp", WSConstants.WSU_NS, ""));
        signature.setParts(parts);
        signature.build(doc, crypto, header);
        TransformerFactory.newInstance().newTransformer().transform(new DOMSource(doc), new StreamResult(System.out));
    }
}
