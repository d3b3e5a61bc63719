// Bouncy Castle's reading of CMP messages, for sim-ca/tests/bouncy_castle_cmp.rs: an
// implementation nobody here wrote parses each PKIMessage given on the command line, verifies
// its signature protection with the first extraCerts certificate and, in a key update request,
// the proof of possession with the requested key. One line per file, `key=value` words, so the
// Rust test asserts on what Bouncy Castle saw.
//
// Run as a single-file program: java -cp bcprov.jar:bcpkix.jar:bcutil.jar CmpCheck.java FILE...

import java.math.BigInteger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.Security;

import org.bouncycastle.asn1.ASN1OctetString;
import org.bouncycastle.asn1.cmp.CertConfirmContent;
import org.bouncycastle.asn1.cmp.CertRepMessage;
import org.bouncycastle.asn1.cmp.CertResponse;
import org.bouncycastle.asn1.cmp.CertStatus;
import org.bouncycastle.asn1.cmp.ErrorMsgContent;
import org.bouncycastle.asn1.cmp.PKIBody;
import org.bouncycastle.asn1.cmp.PKIMessage;
import org.bouncycastle.asn1.cmp.PKIMessages;
import org.bouncycastle.asn1.cmp.PKIStatusInfo;
import org.bouncycastle.asn1.cmp.PollRepContent;
import org.bouncycastle.asn1.crmf.AttributeTypeAndValue;
import org.bouncycastle.asn1.crmf.CertReqMessages;
import org.bouncycastle.asn1.crmf.CertReqMsg;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cert.cmp.GeneralPKIMessage;
import org.bouncycastle.cert.cmp.ProtectedPKIMessage;
import org.bouncycastle.cert.crmf.CertificateRequestMessage;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;
import org.bouncycastle.operator.jcajce.JcaContentVerifierProviderBuilder;
import org.bouncycastle.util.encoders.Hex;

public class CmpCheck {
    public static void main(String[] args) throws Exception {
        Security.addProvider(new BouncyCastleProvider());
        for (String file : args) {
            StringBuilder out = new StringBuilder("file=" + Path.of(file).getFileName());
            try {
                describe(PKIMessage.getInstance(Files.readAllBytes(Path.of(file))), out, true);
            } catch (Exception e) {
                out.append(" error=").append(e.getClass().getSimpleName());
            }
            System.out.println(out);
        }
    }

    static void describe(PKIMessage message, StringBuilder out, boolean outer) throws Exception {
        ProtectedPKIMessage protectedMessage =
                new ProtectedPKIMessage(new GeneralPKIMessage(message));
        PKIBody body = message.getBody();
        out.append(" body=").append(body.getType());
        if (protectedMessage.hasPasswordBasedMacProtection()) {
            out.append(" protection=mac");
        } else {
            X509CertificateHolder[] certs = protectedMessage.getCertificates();
            if (certs.length == 0) {
                out.append(" protection=no-certificate");
            } else {
                boolean ok = protectedMessage.verify(
                        new JcaContentVerifierProviderBuilder().setProvider("BC").build(certs[0]));
                out.append(" protection=").append(ok ? "ok" : "FAILED");
                out.append(" signer=\"").append(certs[0].getSubject()).append('"');
            }
        }
        out.append(" tid=").append(hex(message.getHeader().getTransactionID()));
        out.append(" sender_nonce=").append(hex(message.getHeader().getSenderNonce()));
        out.append(" recip_nonce=").append(hex(message.getHeader().getRecipNonce()));
        switch (body.getType()) {
            case PKIBody.TYPE_KEY_UPDATE_REQ: {
                CertReqMsg request = CertReqMessages.getInstance(body.getContent()).toCertReqMsgArray()[0];
                CertificateRequestMessage crm = new CertificateRequestMessage(request);
                boolean pop = crm.getProofOfPossessionType() == CertificateRequestMessage.popSigningKey
                        && crm.isValidSigningKeyPOP(new JcaContentVerifierProviderBuilder()
                                .setProvider("BC")
                                .build(new JcaPEMKeyConverter().setProvider("BC")
                                        .getPublicKey(crm.getCertTemplate().getPublicKey())));
                out.append(" pop=").append(pop ? "ok" : "FAILED");
                out.append(" subject=\"").append(crm.getCertTemplate().getSubject()).append('"');
                AttributeTypeAndValue[] controls = request.getCertReq().getControls() == null
                        ? new AttributeTypeAndValue[0]
                        : request.getCertReq().getControls().toAttributeTypeAndValueArray();
                for (AttributeTypeAndValue control : controls) {
                    out.append(" control=").append(control.getType().getId());
                }
                break;
            }
            case PKIBody.TYPE_KEY_UPDATE_REP: {
                CertResponse response = CertRepMessage.getInstance(body.getContent()).getResponse()[0];
                out.append(" status=").append(response.getStatus().getStatus());
                if (response.getCertifiedKeyPair() != null) {
                    X509CertificateHolder issued = new X509CertificateHolder(response
                            .getCertifiedKeyPair().getCertOrEncCert().getCertificate()
                            .getX509v3PKCert());
                    out.append(" issued=\"").append(issued.getSubject()).append('"');
                }
                break;
            }
            case PKIBody.TYPE_CERT_CONFIRM: {
                CertStatus status = CertConfirmContent.getInstance(body.getContent()).toCertStatusArray()[0];
                out.append(" cert_hash=").append(hex(status.getCertHash()));
                PKIStatusInfo info = status.getStatusInfo();
                out.append(" accepted=").append(info == null || info.getStatus().equals(BigInteger.ZERO));
                break;
            }
            case PKIBody.TYPE_POLL_REP: {
                PollRepContent poll = PollRepContent.getInstance(body.getContent());
                out.append(" check_after=").append(poll.getCheckAfter(0).getValue());
                break;
            }
            case PKIBody.TYPE_ERROR: {
                PKIStatusInfo info = ErrorMsgContent.getInstance(body.getContent()).getPKIStatusInfo();
                out.append(" status=").append(info.getStatus());
                if (info.getFailInfo() != null) {
                    out.append(" fail_info=").append(info.getFailInfo().intValue());
                }
                break;
            }
            case PKIBody.TYPE_NESTED: {
                if (outer) {
                    PKIMessage[] inner = PKIMessages.getInstance(body.getContent()).toPKIMessageArray();
                    out.append(" inner=").append(inner.length).append(" [");
                    describe(inner[0], out, false);
                    out.append(" ]");
                }
                break;
            }
            default:
                break;
        }
    }

    static String hex(ASN1OctetString octets) {
        return octets == null ? "-" : Hex.toHexString(octets.getOctets());
    }
}
