//! Object identifiers used by CMC renewal, with their source.
//!
//! RFC 5272 §3.1 / RFC 6402 (CMC), RFC 5652 (CMS), RFC 5754 / RFC 8017 / RFC 5758 (algorithms),
//! MS-WCCE 2.2.2.7 (Microsoft attributes and extensions). [`name`] turns any of them into the
//! name `renew inspect` prints.

use const_oid::ObjectIdentifier as Oid;

macro_rules! oids {
    ($($(#[$doc:meta])* $name:ident = $dotted:literal, $label:literal;)*) => {
        $( $(#[$doc])* pub const $name: Oid = Oid::new_unwrap($dotted); )*

        /// Human-readable name of an OID we know, for display.
        pub fn name(oid: &Oid) -> Option<&'static str> {
            $( if *oid == $name { return Some($label); } )*
            None
        }
    };
}

oids! {
    /// `id-cct-PKIData`: eContentType of a Full PKI Request (RFC 5272 §3.2).
    ID_CCT_PKI_DATA = "1.3.6.1.5.5.7.12.2", "id-cct-PKIData";
    /// `id-cct-PKIResponse`: eContentType of a Full PKI Response (RFC 5272 §3.2).
    ID_CCT_PKI_RESPONSE = "1.3.6.1.5.5.7.12.3", "id-cct-PKIResponse";
    /// CMC control: CMCStatusInfo (RFC 5272 §6.1.2).
    ID_CMC_STATUS_INFO = "1.3.6.1.5.5.7.7.1", "id-cmc-statusInfo";
    /// CMC control: identification.
    ID_CMC_IDENTIFICATION = "1.3.6.1.5.5.7.7.2", "id-cmc-identification";
    /// CMC control: identityProof.
    ID_CMC_IDENTITY_PROOF = "1.3.6.1.5.5.7.7.3", "id-cmc-identityProof";
    /// CMC control: dataReturn.
    ID_CMC_DATA_RETURN = "1.3.6.1.5.5.7.7.4", "id-cmc-dataReturn";
    /// CMC control: transactionId (INTEGER, RFC 5272 §6.6).
    ID_CMC_TRANSACTION_ID = "1.3.6.1.5.5.7.7.5", "id-cmc-transactionId";
    /// CMC control: senderNonce (OCTET STRING, RFC 5272 §6.6).
    ID_CMC_SENDER_NONCE = "1.3.6.1.5.5.7.7.6", "id-cmc-senderNonce";
    /// CMC control: recipientNonce (OCTET STRING, RFC 5272 §6.6).
    ID_CMC_RECIPIENT_NONCE = "1.3.6.1.5.5.7.7.7", "id-cmc-recipientNonce";
    /// CMC control: addExtensions (RFC 5272 §6.5.2).
    ID_CMC_ADD_EXTENSIONS = "1.3.6.1.5.5.7.7.8", "id-cmc-addExtensions";
    /// CMC control: encryptedPOP.
    ID_CMC_ENCRYPTED_POP = "1.3.6.1.5.5.7.7.9", "id-cmc-encryptedPOP";
    /// CMC control: decryptedPOP.
    ID_CMC_DECRYPTED_POP = "1.3.6.1.5.5.7.7.10", "id-cmc-decryptedPOP";
    /// CMC control: lraPOPWitness.
    ID_CMC_LRA_POP_WITNESS = "1.3.6.1.5.5.7.7.11", "id-cmc-lraPOPWitness";
    /// CMC control: getCert (RFC 5272 §6.9).
    ID_CMC_GET_CERT = "1.3.6.1.5.5.7.7.15", "id-cmc-getCert";
    /// CMC control: getCRL.
    ID_CMC_GET_CRL = "1.3.6.1.5.5.7.7.16", "id-cmc-getCRL";
    /// CMC control: revokeRequest.
    ID_CMC_REVOKE_REQUEST = "1.3.6.1.5.5.7.7.17", "id-cmc-revokeRequest";
    /// CMC control: regInfo (OCTET STRING, RFC 5272 §6.12).
    ID_CMC_REG_INFO = "1.3.6.1.5.5.7.7.18", "id-cmc-regInfo";
    /// CMC control: responseInfo (OCTET STRING, RFC 5272 §6.12).
    ID_CMC_RESPONSE_INFO = "1.3.6.1.5.5.7.7.19", "id-cmc-responseInfo";
    /// CMC control: queryPending (OCTET STRING = pendToken, RFC 5272 §6.13).
    ID_CMC_QUERY_PENDING = "1.3.6.1.5.5.7.7.21", "id-cmc-queryPending";
    /// CMC control: popLinkRandom.
    ID_CMC_POP_LINK_RANDOM = "1.3.6.1.5.5.7.7.22", "id-cmc-popLinkRandom";
    /// CMC control: popLinkWitness.
    ID_CMC_POP_LINK_WITNESS = "1.3.6.1.5.5.7.7.23", "id-cmc-popLinkWitness";
    /// CMC control: confirmCertAcceptance.
    ID_CMC_CONFIRM_CERT_ACCEPTANCE = "1.3.6.1.5.5.7.7.24", "id-cmc-confirmCertAcceptance";
    /// CMC control: CMCStatusInfoV2 (RFC 5272 §6.1.1).
    ID_CMC_STATUS_INFO_V2 = "1.3.6.1.5.5.7.7.25", "id-cmc-statusInfoV2";
    /// CMC control: trustedAnchors.
    ID_CMC_TRUSTED_ANCHORS = "1.3.6.1.5.5.7.7.26", "id-cmc-trustedAnchors";
    /// CMC control: authData.
    ID_CMC_AUTH_DATA = "1.3.6.1.5.5.7.7.27", "id-cmc-authData";
    /// CMC control: batchRequests.
    ID_CMC_BATCH_REQUESTS = "1.3.6.1.5.5.7.7.28", "id-cmc-batchRequests";
    /// CMC control: batchResponses.
    ID_CMC_BATCH_RESPONSES = "1.3.6.1.5.5.7.7.29", "id-cmc-batchResponses";
    /// CMC control: publishCert.
    ID_CMC_PUBLISH_CERT = "1.3.6.1.5.5.7.7.30", "id-cmc-publishCert";
    /// CMC control: modCertTemplate.
    ID_CMC_MOD_CERT_TEMPLATE = "1.3.6.1.5.5.7.7.31", "id-cmc-modCertTemplate";
    /// CMC control: controlProcessed.
    ID_CMC_CONTROL_PROCESSED = "1.3.6.1.5.5.7.7.32", "id-cmc-controlProcessed";
    /// CMC control: popLinkWitnessV2 (IANA numbering; the RFC 6402 module text swaps 33/34).
    ID_CMC_POP_LINK_WITNESS_V2 = "1.3.6.1.5.5.7.7.33", "id-cmc-popLinkWitnessV2";
    /// CMC control: identityProofV2.
    ID_CMC_IDENTITY_PROOF_V2 = "1.3.6.1.5.5.7.7.34", "id-cmc-identityProofV2";
    /// `id-alg-noSignature` (RFC 5272 §3.2.3): the Microsoft "No-Signature" first signer.
    ID_ALG_NO_SIGNATURE = "1.3.6.1.5.5.7.6.2", "id-alg-noSignature";
    /// EKU id-kp-cmcCA.
    ID_KP_CMC_CA = "1.3.6.1.5.5.7.3.27", "id-kp-cmcCA";
    /// EKU id-kp-cmcRA.
    ID_KP_CMC_RA = "1.3.6.1.5.5.7.3.28", "id-kp-cmcRA";

    /// CMS `id-data`.
    ID_DATA = "1.2.840.113549.1.7.1", "id-data";
    /// CMS `id-signedData`.
    ID_SIGNED_DATA = "1.2.840.113549.1.7.2", "id-signedData";
    /// CMS signed attribute contentType.
    ID_CONTENT_TYPE = "1.2.840.113549.1.9.3", "contentType";
    /// CMS signed attribute messageDigest.
    ID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4", "messageDigest";
    /// CMS signed attribute signingTime.
    ID_SIGNING_TIME = "1.2.840.113549.1.9.5", "signingTime";
    /// CMS signed attribute cmsAlgorithmProtection (RFC 6211).
    ID_CMS_ALGORITHM_PROTECTION = "1.2.840.113549.1.9.52", "cmsAlgorithmProtection";
    /// PKCS#9 extensionRequest.
    ID_EXTENSION_REQUEST = "1.2.840.113549.1.9.14", "extensionRequest";
    /// Microsoft's older extensionRequest OID (also accepted by ADCS).
    MS_EXTENSION_REQUEST = "1.3.6.1.4.1.311.2.1.14", "msExtensionRequest";

    /// SHA-1.
    SHA1 = "1.3.14.3.2.26", "sha1";
    /// SHA-256.
    SHA256 = "2.16.840.1.101.3.4.2.1", "sha256";
    /// SHA-384.
    SHA384 = "2.16.840.1.101.3.4.2.2", "sha384";
    /// SHA-512.
    SHA512 = "2.16.840.1.101.3.4.2.3", "sha512";
    /// rsaEncryption (also what Microsoft puts in SignerInfo.signatureAlgorithm).
    RSA_ENCRYPTION = "1.2.840.113549.1.1.1", "rsaEncryption";
    /// sha1WithRSAEncryption.
    SHA1_WITH_RSA = "1.2.840.113549.1.1.5", "sha1WithRSAEncryption";
    /// sha256WithRSAEncryption.
    SHA256_WITH_RSA = "1.2.840.113549.1.1.11", "sha256WithRSAEncryption";
    /// sha384WithRSAEncryption.
    SHA384_WITH_RSA = "1.2.840.113549.1.1.12", "sha384WithRSAEncryption";
    /// sha512WithRSAEncryption.
    SHA512_WITH_RSA = "1.2.840.113549.1.1.13", "sha512WithRSAEncryption";
    /// id-ecPublicKey.
    EC_PUBLIC_KEY = "1.2.840.10045.2.1", "id-ecPublicKey";
    /// NIST P-256 (secp256r1).
    SECP256R1 = "1.2.840.10045.3.1.7", "secp256r1";
    /// NIST P-384 (secp384r1).
    SECP384R1 = "1.3.132.0.34", "secp384r1";
    /// ecdsa-with-SHA1.
    ECDSA_WITH_SHA1 = "1.2.840.10045.4.1", "ecdsa-with-SHA1";
    /// ecdsa-with-SHA256.
    ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2", "ecdsa-with-SHA256";
    /// ecdsa-with-SHA384.
    ECDSA_WITH_SHA384 = "1.2.840.10045.4.3.3", "ecdsa-with-SHA384";
    /// ecdsa-with-SHA512.
    ECDSA_WITH_SHA512 = "1.2.840.10045.4.3.4", "ecdsa-with-SHA512";

    /// X.509 subjectKeyIdentifier.
    SUBJECT_KEY_IDENTIFIER = "2.5.29.14", "subjectKeyIdentifier";
    /// X.509 keyUsage.
    KEY_USAGE = "2.5.29.15", "keyUsage";
    /// X.509 subjectAltName.
    SUBJECT_ALT_NAME = "2.5.29.17", "subjectAltName";
    /// X.509 basicConstraints.
    BASIC_CONSTRAINTS = "2.5.29.19", "basicConstraints";
    /// X.509 cRLDistributionPoints.
    CRL_DISTRIBUTION_POINTS = "2.5.29.31", "cRLDistributionPoints";
    /// X.509 certificatePolicies.
    CERTIFICATE_POLICIES = "2.5.29.32", "certificatePolicies";
    /// X.509 authorityKeyIdentifier.
    AUTHORITY_KEY_IDENTIFIER = "2.5.29.35", "authorityKeyIdentifier";
    /// X.509 extKeyUsage.
    EXT_KEY_USAGE = "2.5.29.37", "extKeyUsage";
    /// PKIX authorityInfoAccess.
    AUTHORITY_INFO_ACCESS = "1.3.6.1.5.5.7.1.1", "authorityInfoAccess";
    /// Certificate Transparency SCT list (never inherited: it is bound to the old certificate).
    CT_SCT_LIST = "1.3.6.1.4.1.11129.2.4.2", "ctSignedCertificateTimestampList";
    /// EKU clientAuth.
    KP_CLIENT_AUTH = "1.3.6.1.5.5.7.3.2", "clientAuth";
    /// EKU smartcardLogon.
    KP_SMARTCARD_LOGON = "1.3.6.1.4.1.311.20.2.2", "smartcardLogon";
    /// EKU serverAuth.
    KP_SERVER_AUTH = "1.3.6.1.5.5.7.3.1", "serverAuth";
    /// EKU id-kp-cmcCA (RFC 6402 §2.10): a CA key that signs CMC responses.
    KP_CMC_CA = "1.3.6.1.5.5.7.3.27", "id-kp-cmcCA";
    /// EKU id-kp-cmcRA (RFC 6402 §2.10): a registration authority's key that signs CMC.
    KP_CMC_RA = "1.3.6.1.5.5.7.3.28", "id-kp-cmcRA";
    /// commonName.
    CN = "2.5.4.3", "commonName";

    /// id-aa-attestation: PKCS#10 attribute carrying an AttestationBundle
    /// (draft-ietf-lamps-csr-attestation; early-allocated by IANA as id-aa-evidence).
    ID_AA_ATTESTATION = "1.2.840.113549.1.9.16.2.59", "id-aa-attestation";
    /// Yubico's PIV attestation arc: here, the type of a statement that is a YubiKey PIV
    /// attestation certificate.
    YUBICO_PIV_ATTESTATION = "1.3.6.1.4.1.41482.3", "Yubico PIV attestation";

    /// szOID_RENEWAL_CERTIFICATE: PKCS#10 attribute holding the certificate being renewed.
    MS_RENEWAL_CERTIFICATE = "1.3.6.1.4.1.311.13.1", "szOID_RENEWAL_CERTIFICATE";
    /// szOID_ENROLLMENT_NAME_VALUE_PAIR: `SEQUENCE { name BMPString, value BMPString }`.
    MS_ENROLLMENT_NAME_VALUE_PAIR = "1.3.6.1.4.1.311.13.2.1", "szOID_ENROLLMENT_NAME_VALUE_PAIR";
    /// szOID_ENROLLMENT_CSP_PROVIDER.
    MS_ENROLLMENT_CSP_PROVIDER = "1.3.6.1.4.1.311.13.2.2", "szOID_ENROLLMENT_CSP_PROVIDER";
    /// szOID_OS_VERSION (IA5String "maj.min.build.platform").
    MS_OS_VERSION = "1.3.6.1.4.1.311.13.2.3", "szOID_OS_VERSION";
    /// szOID_REQUEST_CLIENT_INFO.
    MS_REQUEST_CLIENT_INFO = "1.3.6.1.4.1.311.21.20", "szOID_REQUEST_CLIENT_INFO";
    /// szOID_CMC_ADD_ATTRIBUTES: Microsoft's CMC control carrying attributes.
    MS_CMC_ADD_ATTRIBUTES = "1.3.6.1.4.1.311.10.10.1", "szOID_CMC_ADD_ATTRIBUTES";
    /// szOID_ISSUED_CERT_HASH: SHA-1 of the issued certificate, in an ADCS response.
    MS_ISSUED_CERT_HASH = "1.3.6.1.4.1.311.21.17", "szOID_ISSUED_CERT_HASH";
    /// szOID_ENCRYPTED_KEY_HASH (key archival).
    MS_ENCRYPTED_KEY_HASH = "1.3.6.1.4.1.311.21.21", "szOID_ENCRYPTED_KEY_HASH";
    /// szOID_ARCHIVED_KEY_ATTR (key archival, unsigned attribute).
    MS_ARCHIVED_KEY_ATTR = "1.3.6.1.4.1.311.21.13", "szOID_ARCHIVED_KEY_ATTR";
    /// szOID_CERTIFICATE_TEMPLATE: template extension v2 `{ templateID, major?, minor? }`.
    MS_CERTIFICATE_TEMPLATE = "1.3.6.1.4.1.311.21.7", "szOID_CERTIFICATE_TEMPLATE";
    /// szOID_ENROLL_CERTTYPE: template extension v1 (BMPString template name).
    MS_ENROLL_CERTTYPE = "1.3.6.1.4.1.311.20.2", "szOID_ENROLL_CERTTYPE";
    /// szOID_APPLICATION_CERT_POLICIES.
    MS_APPLICATION_CERT_POLICIES = "1.3.6.1.4.1.311.21.10", "szOID_APPLICATION_CERT_POLICIES";
    /// szOID_RDN_DUMMY_SIGNER: RDN type of the "Dummy Signer" issuer of a no-signature signer.
    MS_RDN_DUMMY_SIGNER = "1.3.6.1.4.1.311.21.9", "szOID_RDN_DUMMY_SIGNER";
}

/// The OID in dotted form followed by its name when we know it: `1.3.6.1.4.1.311.13.1
/// (szOID_RENEWAL_CERTIFICATE)`.
pub fn describe(oid: &Oid) -> String {
    match name(oid) {
        Some(label) => format!("{label} ({oid})"),
        None => oid.to_string(),
    }
}
