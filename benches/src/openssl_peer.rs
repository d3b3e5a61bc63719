//! The peer: OpenSSL's libcrypto (through the `openssl` crate) doing the same CMC work as
//! `renewal_codec::cmc`, so both are measured in one run.
//!
//! *Build* makes the same message ours makes: a PKCS#10 signed by the new key (subject of the old
//! certificate, the same extension request, the Microsoft renewal-certificate attribute), wrapped
//! in a PKIData with a transactionId and a senderNonce, inside a CMS SignedData with two signers —
//! the new key named by subject key identifier (first), the old key by issuer and serial
//! (second), SHA-256, the old certificate included. OpenSSL adds a `signingTime` signed attribute
//! we do not (OpenSSL 3.0 cannot leave it out); it is a few dozen bytes.
//! *Verify* checks both CMS signers (`CMS_verify`) and the PKCS#10 signature (`X509_REQ_verify`).
//!
//! OpenSSL has no CMC encoder, so the PKIData around the PKCS#10 is written as plain TLVs here;
//! it is a few hundred bytes of copying, next to three signatures.
//!
//! The `openssl` crate does not wrap `CMS_add1_signer`, `CMS_set1_eContentType` or `CMS_final`
//! (the calls a two-signer SignedData needs), so those three are declared and called directly:
//! the only `unsafe` code in the workspace, confined to this benchmark-only module.
#![allow(unsafe_code)]

use std::{
    ffi::{c_int, c_uint, c_void},
    ptr,
};

use foreign_types_shared::ForeignType;
use openssl::{
    asn1::{Asn1Object, Asn1OctetString},
    bn::BigNum,
    cms::{CMSOptions, CmsContentInfo},
    error::ErrorStack,
    hash::MessageDigest,
    pkey::{PKey, Private},
    stack::Stack,
    x509::{
        X509, X509Builder, X509Extension, X509Name, X509Req, X509ReqBuilder,
        extension::SubjectKeyIdentifier,
    },
};
use openssl_sys as ffi;

unsafe extern "C" {
    fn CMS_add1_signer(
        cms: *mut ffi::CMS_ContentInfo,
        signcert: *mut ffi::X509,
        pkey: *mut ffi::EVP_PKEY,
        md: *const ffi::EVP_MD,
        flags: c_uint,
    ) -> *mut c_void;
    fn CMS_set1_eContentType(cms: *mut ffi::CMS_ContentInfo, oid: *const ffi::ASN1_OBJECT)
    -> c_int;
    fn CMS_final(
        cms: *mut ffi::CMS_ContentInfo,
        data: *mut ffi::BIO,
        dcont: *mut ffi::BIO,
        flags: c_uint,
    ) -> c_int;
}

/// `id-cct-PKIData` (RFC 5272).
const PKI_DATA: &str = "1.3.6.1.5.5.7.12.2";
/// `id-cmc-transactionId`, `id-cmc-senderNonce`.
const TRANSACTION_ID: [u8; 8] = [0x2b, 6, 1, 5, 5, 7, 7, 5];
const SENDER_NONCE: [u8; 8] = [0x2b, 6, 1, 5, 5, 7, 7, 6];
/// Microsoft `szOID_RENEWAL_CERTIFICATE`.
const RENEWAL_CERTIFICATE: &std::ffi::CStr = c"1.3.6.1.4.1.311.13.1";

/// One extension of the request, as (OID text, critical, DER value).
pub type ExtensionSpec = (String, bool, Vec<u8>);

/// What the peer signs with and what it puts in the request.
pub struct OpensslPeer {
    old_cert: X509,
    old_key: PKey<Private>,
    new_key: PKey<Private>,
    /// A throwaway certificate for the new key: OpenSSL adds a signer only from a certificate,
    /// and takes the subject key identifier from it (`CMS_USE_KEYID`). Not included in the
    /// message (`CMS_NOCERTS`), as ours includes none for the new key.
    new_cert: X509,
    extensions: Vec<ExtensionSpec>,
}

fn cvt(ok: bool) -> Result<(), ErrorStack> {
    if ok { Ok(()) } else { Err(ErrorStack::get()) }
}

/// A DER TLV with a short or long length.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn small_int(v: u32) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(3);
    let mut content = bytes[skip..].to_vec();
    if content[0] & 0x80 != 0 {
        content.insert(0, 0);
    }
    tlv(0x02, &content)
}

/// PKIData { controls [transactionId, senderNonce], reqSequence [tcr 1: pkcs10], {}, {} }.
fn pki_data(transaction_id: u32, sender_nonce: &[u8], pkcs10: &[u8]) -> Vec<u8> {
    let control = |body: u32, oid: &[u8], value: Vec<u8>| {
        let mut c = small_int(body);
        c.extend(tlv(0x06, oid));
        c.extend(tlv(0x31, &value));
        tlv(0x30, &c)
    };
    let mut controls = control(2, &TRANSACTION_ID, small_int(transaction_id));
    controls.extend(control(3, &SENDER_NONCE, tlv(0x04, sender_nonce)));
    let mut tcr = small_int(1);
    tcr.extend_from_slice(pkcs10);
    let mut body = tlv(0x30, &controls);
    body.extend(tlv(0x30, &tlv(0xa0, &tcr)));
    body.extend(tlv(0x30, &[]));
    body.extend(tlv(0x30, &[]));
    tlv(0x30, &body)
}

/// The content of the TLV at the start of `der`, and the bytes after it.
fn split_tlv(der: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let first = *der.get(1)?;
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        let bytes = der.get(2..2 + n)?;
        (
            bytes.iter().fold(0usize, |a, b| (a << 8) | *b as usize),
            2 + n,
        )
    };
    let end = header.checked_add(len)?;
    Some((der.get(..end)?, der.get(header..end)?, der.get(end..)?))
}

/// The PKCS#10 inside a PKIData built as [`pki_data`] builds it.
fn pkcs10_of(pki_data: &[u8]) -> Option<&[u8]> {
    let (_, body, _) = split_tlv(pki_data)?;
    let (_, _, rest) = split_tlv(body)?; // controls
    let (_, reqs, _) = split_tlv(rest)?;
    let (_, tcr, _) = split_tlv(reqs)?;
    let (_, _, after_id) = split_tlv(tcr)?;
    let (whole, _, _) = split_tlv(after_id)?;
    Some(whole)
}

impl OpensslPeer {
    /// The peer for the given keys (PKCS#8 DER), old certificate (DER), and the extension
    /// request our builder makes for them.
    pub fn new(
        old_cert_der: &[u8],
        old_key_pkcs8: &[u8],
        new_key_pkcs8: &[u8],
        extensions: Vec<ExtensionSpec>,
    ) -> Result<Self, ErrorStack> {
        let old_cert = X509::from_der(old_cert_der)?;
        let old_key = PKey::private_key_from_der(old_key_pkcs8)?;
        let new_key = PKey::private_key_from_der(new_key_pkcs8)?;
        let mut builder = X509Builder::new()?;
        builder.set_version(2)?;
        let serial = BigNum::from_u32(1)?.to_asn1_integer()?;
        builder.set_serial_number(&serial)?;
        let mut name = X509Name::builder()?;
        name.append_entry_by_text("CN", "throwaway")?;
        let name = name.build();
        builder.set_subject_name(&name)?;
        builder.set_issuer_name(&name)?;
        builder.set_pubkey(&new_key)?;
        builder.set_not_before(old_cert.not_before())?;
        builder.set_not_after(old_cert.not_after())?;
        let ski = SubjectKeyIdentifier::new().build(&builder.x509v3_context(None, None))?;
        builder.append_extension(ski)?;
        builder.sign(&new_key, MessageDigest::sha256())?;
        Ok(Self {
            old_cert,
            old_key,
            new_key,
            new_cert: builder.build(),
            extensions,
        })
    }

    /// Builds and signs a renewal request (three signatures), DER.
    pub fn build(&self, transaction_id: u32, sender_nonce: &[u8]) -> Result<Vec<u8>, ErrorStack> {
        let pkcs10 = self.pkcs10()?;
        let content = pki_data(transaction_id, sender_nonce, &pkcs10);

        let empty = CmsContentInfo::sign(
            None,
            None::<&openssl::pkey::PKeyRef<Private>>,
            None,
            None,
            CMSOptions::PARTIAL | CMSOptions::BINARY,
        )?;
        let cms = empty.as_ptr();
        let econtent_type = Asn1Object::from_str(PKI_DATA)?;
        let flags = CMSOptions::BINARY | CMSOptions::NOSMIMECAP;
        // SAFETY: `cms`, the certificates, keys and OID are live objects owned by this function
        // or `self` for the duration of every call; OpenSSL takes its own references
        // ("add1"/"set1"); the BIO is freed below after its last use.
        unsafe {
            cvt(!CMS_add1_signer(
                cms,
                self.new_cert.as_ptr(),
                self.new_key.as_ptr(),
                ffi::EVP_sha256(),
                (flags | CMSOptions::USE_KEYID | CMSOptions::CMS_NOCERTS).bits(),
            )
            .is_null())?;
            cvt(!CMS_add1_signer(
                cms,
                self.old_cert.as_ptr(),
                self.old_key.as_ptr(),
                ffi::EVP_sha256(),
                flags.bits(),
            )
            .is_null())?;
            cvt(CMS_set1_eContentType(cms, econtent_type.as_ptr()) == 1)?;
            let bio = ffi::BIO_new_mem_buf(content.as_ptr().cast(), content.len() as c_int);
            cvt(!bio.is_null())?;
            let finished = CMS_final(cms, bio, ptr::null_mut(), flags.bits());
            ffi::BIO_free_all(bio);
            cvt(finished == 1)?;
        }
        empty.to_der()
    }

    fn pkcs10(&self) -> Result<Vec<u8>, ErrorStack> {
        let mut req = X509ReqBuilder::new()?;
        req.set_subject_name(self.old_cert.subject_name())?;
        req.set_pubkey(&self.new_key)?;
        let mut exts = Stack::new()?;
        for (oid, critical, value) in &self.extensions {
            let (oid, value) = (
                Asn1Object::from_str(oid)?,
                Asn1OctetString::new_from_bytes(value)?,
            );
            exts.push(X509Extension::new_from_der(&oid, *critical, &value)?)?;
        }
        req.add_extensions(&exts)?;
        let req = req.build();
        let old_der = self.old_cert.to_der()?;
        // SAFETY: the request, key and bytes are live for the calls; OpenSSL copies the bytes.
        // (`X509ReqBuilder` has no way to add a non-extension attribute, so the request is
        // signed here too, after the attribute.)
        unsafe {
            cvt(ffi::X509_REQ_add1_attr_by_txt(
                req.as_ptr(),
                RENEWAL_CERTIFICATE.as_ptr(),
                ffi::V_ASN1_SEQUENCE,
                old_der.as_ptr(),
                old_der.len() as c_int,
            ) == 1)?;
            cvt(ffi::X509_REQ_sign(req.as_ptr(), self.new_key.as_ptr(), ffi::EVP_sha256()) > 0)?;
        }
        req.to_der()
    }

    /// Parses a request and verifies its three signatures: both CMS signers (the new key's found
    /// by subject key identifier, the old certificate's by issuer and serial) and the PKCS#10.
    pub fn verify(&self, der: &[u8]) -> Result<(), ErrorStack> {
        let mut cms = CmsContentInfo::from_der(der)?;
        let mut certs = Stack::new()?;
        certs.push(self.new_cert.clone())?;
        let mut content = Vec::new();
        cms.verify(
            Some(&certs),
            None,
            None,
            Some(&mut content),
            CMSOptions::NO_SIGNER_CERT_VERIFY | CMSOptions::BINARY,
        )?;
        let pkcs10 = pkcs10_of(&content).ok_or_else(ErrorStack::get)?;
        let req = X509Req::from_der(pkcs10)?;
        let key = req.public_key()?;
        cvt(req.verify(&key)?)
    }
}
