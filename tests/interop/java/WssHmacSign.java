// Sign a SOAP request with a holder-of-key proof key the way WSS4J does (the Debian libwss4j-java
// package, 1.6): WSSecSignature with the secret key, a custom KeyIdentifier naming the SAML token
// (#SAMLID or #SAMLAssertionID), over the Body and the wsu:Timestamp. Prints the signed envelope.
//
//   java -cp <wss4j, xmlsec, commons-logging, slf4j-api, commons-codec jars> WssHmacSign.java \
//        ENVELOPE_FILE KEY_BASE64 TOKEN_ID VALUE_TYPE SIGNATURE_ALGORITHM
import java.io.File;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.transform.TransformerFactory;
import javax.xml.transform.dom.DOMSource;
import javax.xml.transform.stream.StreamResult;
import org.apache.ws.security.WSConstants;
import org.apache.ws.security.WSEncryptionPart;
import org.apache.ws.security.message.WSSecHeader;
import org.apache.ws.security.message.WSSecSignature;
import org.w3c.dom.Document;

public class WssHmacSign {
    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            System.err.println("usage: WssHmacSign.java ENVELOPE KEY_BASE64 TOKEN_ID VALUE_TYPE SIGNATURE_ALGORITHM");
            System.exit(2);
        }
        org.apache.xml.security.Init.init();
        DocumentBuilderFactory factory = DocumentBuilderFactory.newInstance();
        factory.setNamespaceAware(true);
        Document doc = factory.newDocumentBuilder().parse(new File(args[0]));
        WSSecHeader header = new WSSecHeader();
        header.insertSecurityHeader(doc);  // finds the request's own wsse:Security
        WSSecSignature signature = new WSSecSignature();
        signature.setKeyIdentifierType(WSConstants.CUSTOM_KEY_IDENTIFIER);
        signature.setCustomTokenValueType(args[3]);
        signature.setCustomTokenId(args[2]);
        signature.setSecretKey(Base64.getDecoder().decode(args[1]));
        signature.setSignatureAlgorithm(args[4]);
        List<WSEncryptionPart> parts = new ArrayList<>();
        parts.add(new WSEncryptionPart("Body", doc.getDocumentElement().getNamespaceURI(), "Content"));
        parts.add(new WSEncryptionPart("Timestamp", WSConstants.WSU_NS, ""));
        signature.setParts(parts);
        signature.build(doc, null, header);
        TransformerFactory.newInstance().newTransformer().transform(new DOMSource(doc), new StreamResult(System.out));
    }
}
