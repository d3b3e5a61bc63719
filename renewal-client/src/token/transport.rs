//! APDU transports for [`super::piv::PivToken`]: the simulator in memory (feature `sim`) and
//! PC/SC readers (feature `pcsc`, which links libpcsclite and drives real cards too).

#[cfg(feature = "sim")]
pub use sim::SimTransport;

#[cfg(feature = "pcsc")]
pub use pcsc_reader::PcscTransport;

#[cfg(feature = "sim")]
mod sim {
    use std::sync::{Arc, Mutex};

    use sim_card::SimCard;

    use crate::token::{TokenError, piv::ApduTransport};

    /// The in-process virtual card: APDUs through memory. The card is shared so a test can
    /// inject faults or pull it between two operations.
    #[derive(Clone)]
    pub struct SimTransport {
        card: Arc<Mutex<SimCard>>,
        persist: Option<std::path::PathBuf>,
    }

    impl SimTransport {
        /// Wraps a shared card.
        pub fn new(card: Arc<Mutex<SimCard>>) -> Self {
            Self {
                card,
                persist: None,
            }
        }

        /// Wraps a card whose state lives in `path`, saved (atomically) after every command
        /// that changed it — as a real card's memory keeps each write, so a process killed
        /// mid-renewal leaves the card exactly as far as the commands it sent.
        pub fn persisted(card: Arc<Mutex<SimCard>>, path: std::path::PathBuf) -> Self {
            Self {
                card,
                persist: Some(path),
            }
        }

        /// The card.
        pub fn card(&self) -> Arc<Mutex<SimCard>> {
            Arc::clone(&self.card)
        }
    }

    impl ApduTransport for SimTransport {
        fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TokenError> {
            let mut card = self
                .card
                .lock()
                .map_err(|_| TokenError::Removed("simulator lock poisoned".into()))?;
            let reply = card
                .transmit(apdu)
                .map_err(|e| TokenError::Removed(e.to_string()))?;
            if let Some(path) = &self.persist
                && card.applet_mut().take_dirty()
            {
                card.state().save(path).map_err(|e| TokenError::Backend {
                    backend: "sim-card",
                    detail: e.to_string(),
                })?;
            }
            Ok(reply)
        }
    }
}

#[cfg(feature = "pcsc")]
mod pcsc_reader {
    use crate::token::{TokenError, piv::ApduTransport};

    /// A card in a PC/SC reader (pcscd on Linux). Dropping it resets the card, so a PIN
    /// verified during the session does not stay verified for whatever program talks to the
    /// card next (PC/SC's default disconnect leaves the card as it is).
    pub struct PcscTransport {
        card: Option<pcsc::Card>,
        reader: String,
    }

    fn backend(detail: impl ToString) -> TokenError {
        TokenError::Backend {
            backend: "PC/SC",
            detail: detail.to_string(),
        }
    }

    impl PcscTransport {
        /// Connects to the first reader whose name contains `reader` (any reader with a card
        /// when `None`).
        pub fn connect(reader: Option<&str>) -> Result<Self, TokenError> {
            let ctx = pcsc::Context::establish(pcsc::Scope::User).map_err(backend)?;
            let mut buf = vec![0u8; ctx.list_readers_len().map_err(backend)?];
            let readers: Vec<std::ffi::CString> = ctx
                .list_readers(&mut buf)
                .map_err(backend)?
                .map(std::ffi::CStr::to_owned)
                .collect();
            let mut last_error = None;
            for name in readers {
                let text = name.to_string_lossy().into_owned();
                if reader.is_some_and(|r| !text.contains(r)) {
                    continue;
                }
                match ctx.connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY) {
                    Ok(card) => {
                        return Ok(Self {
                            card: Some(card),
                            reader: text,
                        });
                    }
                    Err(e) => last_error = Some(format!("{text}: {e}")),
                }
            }
            Err(TokenError::Removed(last_error.unwrap_or_else(
                || match reader {
                    Some(r) => format!("no PC/SC reader matching {r:?}"),
                    None => "no PC/SC reader with a card".into(),
                },
            )))
        }

        /// The reader's name.
        pub fn reader(&self) -> &str {
            &self.reader
        }
    }

    impl ApduTransport for PcscTransport {
        fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TokenError> {
            let card = self
                .card
                .as_ref()
                .ok_or_else(|| TokenError::Removed("disconnected".into()))?;
            let mut buf = vec![0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED];
            match card.transmit(apdu, &mut buf) {
                Ok(resp) => Ok(resp.to_vec()),
                Err(
                    e @ (pcsc::Error::RemovedCard
                    | pcsc::Error::NoSmartcard
                    | pcsc::Error::ReaderUnavailable
                    | pcsc::Error::ResetCard),
                ) => Err(TokenError::Removed(e.to_string())),
                Err(e) => Err(backend(e)),
            }
        }
    }

    impl Drop for PcscTransport {
        fn drop(&mut self) {
            if let Some(card) = self.card.take() {
                // A failed reset (card already gone) leaves nothing to protect.
                let _ = card.disconnect(pcsc::Disposition::ResetCard);
            }
        }
    }
}
