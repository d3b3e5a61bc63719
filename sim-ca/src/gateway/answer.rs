//! Talking to the upstream and believing it only after checking: the RA's wrapper sent, the
//! answer's signer and certificate verified as strictly as the client verifies them.

use super::*;

/// Why nothing the upstream answered is delivered: the HTTP status and reason for the client,
/// and whether the upstream decided all the same.
#[derive(Debug)]
pub(super) struct NotDelivered {
    /// 502 (the upstream's answer is not usable), 503 (no answer), 500 (nothing was sent).
    pub status: u16,
    /// Why, for the client and the audit trail.
    pub text: String,
    /// The upstream issued a certificate that the gateway will not deliver (another subject,
    /// names, purposes or template, another key or issuer). Its transaction is decided: a
    /// re-send is told so, and not forwarded again — one certificate per transaction, whether
    /// or not the upstream remembers it answered. Anything else (no answer, one that does not
    /// verify, a certificate not valid on the gateway's clock) decided nothing the gateway can
    /// rely on, and the same request may be forwarded again.
    pub decided: bool,
}

impl From<(u16, String)> for NotDelivered {
    fn from((status, text): (u16, String)) -> Self {
        Self {
            status,
            text,
            decided: false,
        }
    }
}

impl Gateway {
    /// Wraps what the user sent in the RA's signed PKIData (`wrap` builds it, given the RA's
    /// fresh transactionId and nonce) and sends it upstream (over MS-WSTEP, a request pending
    /// upstream under `pending` is collected by its id instead).
    pub(super) fn forward(
        &self,
        wrap: impl FnOnce(u64, &[u8]) -> renewal_codec::cmc::Result<Vec<u8>>,
        pending: Option<u64>,
    ) -> Result<Result<CmcAnswer, Failure>, String> {
        use aws_lc_rs::rand::{SecureRandom, SystemRandom};
        let mut nonce = [0u8; 16];
        let mut id = [0u8; 8];
        SystemRandom::new()
            .fill(&mut nonce)
            .and_then(|()| SystemRandom::new().fill(&mut id))
            .map_err(|_| "RNG".to_string())?;
        let wrapped = wrap(u64::from_be_bytes(id) >> 1, &nonce)
            .map_err(|e| format!("wrapping the request: {e}"))?;
        Ok(self.timed(|| self.upstream.cmc(&wrapped, pending), |r| r.is_ok()))
    }

    /// One full CMC exchange with the upstream: the RA's wrapper (`wrap`) sent, or the
    /// request pending upstream under `pending` collected; the answer read and verified for
    /// the renewal of `renewed` onto `new_key`.
    pub(super) fn exchange_cmc(
        &self,
        wrap: impl FnOnce(u64, &[u8]) -> renewal_codec::cmc::Result<Vec<u8>>,
        pending: Option<u64>,
        new_key: &PublicKey,
        renewed: &Certificate,
    ) -> Result<(GatewayAnswer, Option<u64>), NotDelivered> {
        match self.forward(wrap, pending) {
            Ok(exchange) => self.read_cmc_answer(exchange, new_key, renewed),
            // Nothing left the gateway (the wrapper could not be built).
            Err(text) => Err((500, text).into()),
        }
    }

    /// Runs one upstream exchange, counted and timed for `/metrics` and the log.
    pub(super) fn timed<T, E: std::fmt::Display>(
        &self,
        call: impl FnOnce() -> Result<T, E>,
        usable: impl Fn(&Result<T, E>) -> bool,
    ) -> Result<T, E> {
        let started = Instant::now();
        let result = call();
        let failed = !usable(&result);
        let took = started.elapsed();
        self.metrics.observe(took, failed);
        match &result {
            Ok(_) => tracing::info!(latency_us = took.as_micros() as u64, failed, "upstream"),
            Err(e) => tracing::warn!(error = %e, latency_us = took.as_micros() as u64, "upstream"),
        }
        result
    }

    /// The certificate in an upstream answer that certifies `key`, provided it chains to the
    /// upstream CA, is the renewal of `old` and nothing more — the same subject, names,
    /// extended key usages, basic constraints and template (each compared as parsed values) —
    /// and is valid now, as strictly as the client checks it. Anything added or changed is a 502: the gateway
    /// never delivers a certificate it would not have asked for.
    pub(super) fn certificate_for(
        &self,
        certificates: &[Retained<Certificate>],
        key: &PublicKey,
        old: &Certificate,
    ) -> Result<Retained<Certificate>, NotDelivered> {
        let decided = |text: String| NotDelivered {
            status: 502,
            text,
            decided: true,
        };
        let issued = certificates
            .iter()
            .find(|c| {
                PublicKey::from_spki(c.value().tbs_certificate().subject_public_key_info())
                    .is_ok_and(|k| k == *key)
            })
            .ok_or_else(|| {
                decided("the upstream's certificate does not certify the new key".into())
            })?;
        if !self
            .policy
            .upstream_cas
            .iter()
            .any(|ca| renewal_codec::x509::issued_by(issued, ca.value()))
        {
            return Err(decided(
                "the upstream's certificate does not chain to the upstream CA".into(),
            ));
        }
        renewal_codec::x509::same_renewal_profile(issued.value(), old)
            .map_err(|what| decided(format!("the upstream's certificate has another {what}")))?;
        // The client refuses a certificate it cannot use now; delivered, it would roll back
        // after the upstream counted it. A clock that is off may be right by the next try.
        renewal_codec::x509::usable_at(
            issued.value().tbs_certificate().validity(),
            self.desk.clock.now(),
        )
        .map_err(|e| (502, format!("the upstream's certificate {e}")))?;
        Ok(issued.clone())
    }

    /// Reads the upstream's answer to a forwarded CMC request: HTTP errors and answers that do
    /// not verify become failures; a verified response becomes the client's answer.
    pub(super) fn read_cmc_answer(
        &self,
        answer: Result<CmcAnswer, Failure>,
        new_key: &PublicKey,
        renewed: &Certificate,
    ) -> Result<(GatewayAnswer, Option<u64>), NotDelivered> {
        let (der, upstream_id) = match answer {
            Err(Failure::Unavailable(text)) => return Err((503, text).into()),
            Err(Failure::BadAnswer(text)) => return Err((502, text).into()),
            Ok(CmcAnswer::Refused { text }) => {
                return Ok((
                    GatewayAnswer::upstream(
                        Outcome::Failed { fail_info: None },
                        Some(format!("refused by the CA: {text}")),
                    ),
                    None,
                ));
            }
            Ok(CmcAnswer::Response { der, upstream_id }) => (der, upstream_id),
        };
        let response: ParsedResponse = parse_response(&der, &self.desk.limits)
            .map_err(|e| (502, format!("upstream answer: {e}")))?;
        if response.form != ResponseForm::FullPkiResponse {
            return Err((502, "upstream answer is not a full PKI response".into()).into());
        }
        let signer = response
            .verify_signer()
            .map_err(|e| (502, format!("upstream answer signature: {e}")))?;
        // Signed by the upstream CA itself: one of its configured certificates, nothing it
        // merely issued (a user's certificate chains to it too).
        if !self.policy.upstream_cas.contains(signer) {
            return Err((
                502,
                "upstream answer signed by a certificate we do not trust".into(),
            )
                .into());
        }
        let status = response.status_string.clone();
        match &response.outcome {
            Outcome::Issued => {
                if response
                    .certificates
                    .iter()
                    .all(|c| self.policy.upstream_cas.contains(c))
                {
                    // "Issued out of band": nothing to deliver, passed on as such.
                    return Ok((GatewayAnswer::upstream(Outcome::Issued, status), None));
                }
                let cert = self.certificate_for(&response.certificates, new_key, renewed)?;
                Ok((GatewayAnswer::issued(cert), upstream_id))
            }
            Outcome::Pending { token, retry_at } => Ok((
                GatewayAnswer::upstream(
                    Outcome::Pending {
                        token: token.clone(),
                        retry_at: *retry_at,
                    },
                    status,
                ),
                upstream_id,
            )),
            Outcome::Failed { fail_info } => Ok((
                GatewayAnswer::upstream(
                    Outcome::Failed {
                        fail_info: *fail_info,
                    },
                    status,
                ),
                upstream_id,
            )),
            other => Err((502, format!("upstream answered {other:?}")).into()),
        }
    }
}

/// CRYPT_E_REVOKED: what a CA answers for a revoked certificate (ADCS; sim-ca's table).
pub(super) const CRYPT_E_REVOKED: u32 = 0x8009_2010;

/// The HRESULT an ADCS-style status string starts with (`0x80092010: ...`), parsed.
pub(super) fn leading_hresult(status: &str) -> Option<u32> {
    let digits = status.strip_prefix("0x")?.get(..8)?;
    u32::from_str_radix(digits, 16).ok()
}

/// Bounds a Retry-After the upstream asks for: at least a second, at most an hour.
pub(super) fn bounded_retry(secs: u64) -> u64 {
    secs.clamp(1, 3600)
}
