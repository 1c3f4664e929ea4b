// P_SHA1 as WSS4J computes it (org.apache.ws.security.conversation.dkalgo.P_SHA1, the Debian
// libwss4j-java package): the independent implementation our wstrust.proof.p_sha1 is compared with.
//
//   java -cp /usr/share/java/wss4j.jar PSha1.java SECRET_BASE64 SEED_BASE64 LENGTH_BYTES ...
//
// Prints one base64 key per (secret, seed, length) triple, one per line.
import java.util.Base64;
import org.apache.ws.security.conversation.dkalgo.P_SHA1;

public class PSha1 {
    public static void main(String[] args) throws Exception {
        if (args.length == 0 || args.length % 3 != 0) {
            System.err.println("usage: PSha1.java SECRET_BASE64 SEED_BASE64 LENGTH_BYTES ...");
            System.exit(2);
        }
        for (int i = 0; i < args.length; i += 3) {
            byte[] secret = Base64.getDecoder().decode(args[i]);
            byte[] seed = Base64.getDecoder().decode(args[i + 1]);
            byte[] key = new P_SHA1().createKey(secret, seed, 0, Long.parseLong(args[i + 2]));
            System.out.println(Base64.getEncoder().encodeToString(key));
        }
    }
}
