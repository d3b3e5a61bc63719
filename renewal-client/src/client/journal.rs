//! The crash-safe journal: one JSON record per line, written and fsync'd *before* each card
//! mutation (and after, to record the result), so that after a crash at any point
//! `recover` knows what may be on the card.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

/// One journal record.
#[derive(Clone, Debug, Eq, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "kebab-case")]
pub enum Record {
    /// A renewal of the certificate in `old` starts.
    Begin {
        /// The container being renewed.
        old: String,
        /// SHA-256 of the old certificate (hex).
        old_certificate: String,
        /// Mode.
        mode: super::Mode,
        /// The card it happens on, as the token describes itself (type and serial): recovery
        /// acts on that card only. Absent in journals written before it was recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// About to generate a key; these containers existed before.
    GenerateIntent {
        /// Containers present before generation.
        before: Vec<String>,
    },
    /// The new key exists.
    Generated {
        /// Its container.
        container: String,
    },
    /// The request is about to be sent (hex DER), so a pending request can be polled after a
    /// restart.
    Submitted {
        /// The request.
        request: String,
    },
    /// The answer to the request was lost (dropped, timed out, unreadable, HTTP 5xx): the
    /// same request is about to be sent again — try `attempt` (1 = the first re-send). A
    /// crash now leaves a request the CA may have decided: `resume` sends it again.
    Retry {
        /// Which re-send.
        attempt: u32,
        /// What happened to the previous answer.
        reason: String,
    },
    /// The CA took the request under submission.
    Pending {
        /// Seconds it asked us to wait.
        retry_after: u64,
        /// The CA's handle for it, when the protocol has one (MS-WSTEP RequestID): a restart
        /// collects with it instead of re-sending the request.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<u64>,
        /// CMP: the senderNonce (hex) of the CA's last answer, which the next pollReq carries
        /// back as its recipNonce (RFC 9483 §3.1) — also after a restart. Journaled at every
        /// CMP wait, since every answer brings a new one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cmp_nonce: Option<String>,
    },
    /// About to install this certificate (hex DER) in the new container.
    InstallIntent {
        /// The issued certificate.
        certificate: String,
    },
    /// Installed.
    Installed,
    /// About to delete the old key and certificate and move the new ones in.
    SupersedeIntent,
    /// Renewal complete.
    Done {
        /// Where the new certificate is.
        container: String,
    },
    /// About to delete the new container (rollback).
    RollbackIntent {
        /// Why.
        reason: String,
    },
    /// Rolled back: the card is as before.
    RolledBack,
}

impl Record {
    /// The record's kind as people and `--json` read it (`generate-intent`, `done`, ...): the
    /// same name the journal file's `record` field carries.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Begin { .. } => "begin",
            Self::GenerateIntent { .. } => "generate-intent",
            Self::Generated { .. } => "generated",
            Self::Submitted { .. } => "submitted",
            Self::Retry { .. } => "retry",
            Self::Pending { .. } => "pending",
            Self::InstallIntent { .. } => "install-intent",
            Self::Installed => "installed",
            Self::SupersedeIntent => "supersede-intent",
            Self::Done { .. } => "done",
            Self::RollbackIntent { .. } => "rollback-intent",
            Self::RolledBack => "rolled-back",
        }
    }
}

/// Journal I/O errors.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// File I/O.
    #[error("journal {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A record that does not parse (the last line may be torn by a crash: it is ignored).
    #[error("journal {path}: corrupt record on line {line}")]
    Corrupt {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
    },
}

/// Called with every record written (tracing, progress).
pub type Observer = Box<dyn FnMut(&Record) + Send>;

/// The journal file.
pub struct Journal {
    path: PathBuf,
    records: Vec<Record>,
    observer: Option<Observer>,
}

/// Reads journal records, one JSON object per line. A torn last line (the write it belongs to
/// never completed) is dropped; any other unreadable line — bad JSON, bad UTF-8, an unknown
/// record — is corruption, reported with its 1-based line number.
pub fn parse_records(bytes: &[u8]) -> Result<Vec<Record>, usize> {
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    // A final newline leaves an empty last piece, which is not a line.
    let count = match lines.last() {
        Some([]) => lines.len() - 1,
        _ => lines.len(),
    };
    let mut records = Vec::new();
    for (i, line) in lines.iter().take(count).enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice(line) {
            Ok(r) => records.push(r),
            Err(_) if i + 1 == count => {}
            Err(_) => return Err(i + 1),
        }
    }
    Ok(records)
}

impl Journal {
    /// Opens (or creates) the journal at `path`, reading what is there.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let io = |source| JournalError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut records = Vec::new();
        if path.exists() {
            let bytes = std::fs::read(path).map_err(io)?;
            records = parse_records(&bytes).map_err(|line| JournalError::Corrupt {
                path: path.display().to_string(),
                line,
            })?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            records,
            observer: None,
        })
    }

    /// Records of the current renewal (since the last `Begin`).
    pub fn current(&self) -> &[Record] {
        let start = self
            .records
            .iter()
            .rposition(|r| matches!(r, Record::Begin { .. }))
            .unwrap_or(self.records.len());
        &self.records[start..]
    }

    /// The last record.
    pub fn last(&self) -> Option<&Record> {
        self.records.last()
    }

    /// Appends a record and fsyncs before returning.
    pub fn write(&mut self, record: Record) -> Result<(), JournalError> {
        let io = |source| JournalError::Io {
            path: self.path.display().to_string(),
            source,
        };
        let mut line = serde_json::to_string(&record).map_err(|e| io(std::io::Error::other(e)))?;
        line.push('\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        file.write_all(line.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        if let Some(observer) = &mut self.observer {
            observer(&record);
        }
        self.records.push(record);
        Ok(())
    }

    /// Watches every record written from now on.
    pub fn observe(&mut self, observer: Observer) {
        self.observer = Some(observer);
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod kind_tests {
    use super::Record;

    #[test]
    fn every_kind_is_the_name_the_journal_file_carries() {
        let s = String::new;
        let records = [
            Record::Begin {
                old: s(),
                old_certificate: s(),
                mode: crate::client::Mode::FullCmc,
                token: None,
            },
            Record::GenerateIntent { before: vec![] },
            Record::Generated { container: s() },
            Record::Submitted { request: s() },
            Record::Retry {
                attempt: 1,
                reason: s(),
            },
            Record::Pending {
                retry_after: 1,
                request_id: None,
                cmp_nonce: Some(s()),
            },
            Record::InstallIntent { certificate: s() },
            Record::Installed,
            Record::SupersedeIntent,
            Record::Done { container: s() },
            Record::RollbackIntent { reason: s() },
            Record::RolledBack,
        ];
        let mut kinds = std::collections::BTreeSet::new();
        for record in &records {
            let json = serde_json::to_value(record).unwrap();
            assert_eq!(json["record"], record.kind(), "{record:?}");
            kinds.insert(record.kind());
        }
        assert_eq!(kinds.len(), records.len(), "two records share a kind");
    }
}
