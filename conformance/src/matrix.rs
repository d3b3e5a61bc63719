//! The scenario model and the default matrix: card (faults, capacity, PIN) x CA (disposition,
//! transport fault, response style, template) x client (mode, key) x crash point. Each
//! scenario states its expected outcome; the invariant (exactly one valid certificate, no
//! orphan container; the old certificate intact unless renewed) is checked after every one.

use renewal_client::{client::Mode, client::processor::CrashPoint, token::KeyAlgorithm};

use crate::harness::GatewayRoute;
use sim_card::{
    faults::{CommandKind, Fault},
    state::{CardModel, PinPolicy},
    touch::TouchPolicy,
};

/// What a scenario must end in.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Expected {
    /// The new certificate is in 9A, the old one gone.
    Renewed,
    /// The card is as before.
    RolledBack,
    /// The CA has not decided; the new key waits (two containers, old certificate intact).
    Pending,
    /// The run stopped (crash or unreachable card); `recover` completed the renewal.
    RecoveredCompleted,
    /// The run stopped; `recover` rolled back.
    RecoveredRolledBack,
}

impl Expected {
    /// Every outcome.
    pub const ALL: [Self; 5] = [
        Self::Renewed,
        Self::RolledBack,
        Self::Pending,
        Self::RecoveredCompleted,
        Self::RecoveredRolledBack,
    ];

    /// The name scenario files and reports use (`rolled-back`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Renewed => "renewed",
            Self::RolledBack => "rolled-back",
            Self::Pending => "pending",
            Self::RecoveredCompleted => "recovered-completed",
            Self::RecoveredRolledBack => "recovered-rolled-back",
        }
    }

    /// The outcome a scenario file names.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }
}

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Unique name, `area/detail/mode`.
    pub name: String,
    /// sim-ca scenario (TOML).
    pub ca: String,
    /// Card faults.
    pub card_faults: Vec<(CommandKind, u32, Fault)>,
    /// Card key capacity.
    pub capacity: usize,
    /// The PIN the user types.
    pub pin: &'static str,
    /// PIN tries before it blocks.
    pub pin_retries: u8,
    /// Protocol.
    pub mode: Mode,
    /// Key type.
    pub key: KeyAlgorithm,
    /// Stop as if crashed after this journal record.
    pub crash: Option<CrashPoint>,
    /// Expected outcome.
    pub expected: Expected,
    /// Expected PIN prompts.
    pub prompts: usize,
    /// The PIN policy of the card's key in 9A (a YubiKey's 9C-style "always": a VERIFY before
    /// every signature).
    pub pin_policy: PinPolicy,
    /// The client attaches the card's attestation of the new key (`renew --attest`).
    pub attest: bool,
    /// The touch policy of the card's key in 9A, and whether anyone touches it.
    pub touch: Touch,
    /// The card model the renewal meets (the card is provisioned as a YubiKey 5.7 first).
    pub model: CardModel,
    /// The card's management key is a random one stored under the PIN (ykman's `--protect`).
    pub protected_management_key: bool,
    /// How the client reaches the simulated CA: directly (`None`) or through a renewal
    /// gateway in front of it, which reaches the CA by this route.
    pub gateway: Option<GatewayRoute>,
}

/// A key's touch policy in a scenario and the user at the sensor.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Touch {
    /// The key needs no touch.
    Never,
    /// It needs one (`policy`), and the user touches it `after_ms` after the card starts
    /// waiting.
    Given {
        /// always or cached.
        policy: TouchPolicy,
        /// How long the user takes.
        after_ms: u64,
    },
    /// It needs one and nobody touches it: the card gives up after `timeout_ms` (a YubiKey
    /// waits 15 s; the matrix waits less).
    NeverComes {
        /// The card's timeout.
        timeout_ms: u64,
    },
}

/// The name a mode has in scenario names and on the command line.
pub fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::FullCmc => "fullcmc",
        Mode::Cmc => "cmc",
        Mode::SimpleReenroll => "simplereenroll",
        Mode::Wstep => "wstep",
        Mode::Cmp => "cmp",
    }
}

fn base(name: String, mode: Mode, expected: Expected) -> Scenario {
    Scenario {
        name,
        ca: String::new(),
        card_faults: vec![],
        capacity: 24,
        pin: "123456",
        pin_retries: 3,
        mode,
        key: KeyAlgorithm::EcP256,
        crash: None,
        expected,
        prompts: 1,
        pin_policy: PinPolicy::Once,
        attest: false,
        touch: Touch::Never,
        model: CardModel::YubiKey57,
        protected_management_key: false,
        gateway: None,
    }
}

/// A sim-ca scenario whose user template renews only keys attested by a simulated card
/// (attestations chaining to the simulated vendor root).
pub fn attested_keys_only() -> String {
    let root = sim_card::attestation::vendor_root_pem().unwrap_or_default();
    format!(
        "[[template]]\noid = \"{}\"\nname = \"SmartcardUser\"\nattestation_roots = \"\"\"\n{root}\"\"\"\n",
        renewal_client::sample::SAMPLE_TEMPLATE_OID
    )
}

/// The built-in matrix, direct to the simulated CA.
pub fn default_matrix() -> Vec<Scenario> {
    default_matrix_via(None)
}

/// The built-in matrix with every scenario reaching the CA through a renewal gateway by
/// `route` (`None`: directly). Where the gateway changes what the client sees, the expected
/// outcome says so.
pub fn default_matrix_via(route: Option<GatewayRoute>) -> Vec<Scenario> {
    let mut matrix = matrix_expecting(route);
    for scenario in &mut matrix {
        scenario.gateway = route;
    }
    matrix
}

/// The scenarios, their expectations for a client reaching the CA by `route`.
fn matrix_expecting(route: Option<GatewayRoute>) -> Vec<Scenario> {
    use Expected::*;
    let modes = Mode::ALL.into_iter().chain([Mode::Cmp]);
    let mut out = Vec::new();
    for mode in modes {
        let m = mode_name(mode);
        // Whether the old key signs besides the TLS handshake (full CMC's CMS signer, CMP's
        // protection) — so a failing fourth signature, or a PIN-always key, counts.
        let cmc = mode != Mode::SimpleReenroll;
        // CA dispositions.
        let dispositions: [(&str, &str, Expected); 10] = [
            ("issue", "", Renewed),
            ("deny", "[[rule]]\ndisposition = \"deny\"\n", RolledBack),
            (
                "error",
                "[[rule]]\ndisposition = \"error\"\nhresult = 0x80094006\n",
                RolledBack,
            ),
            (
                "pending-poll-issued",
                "[[rule]]\ndisposition = \"pending\"\nresolve = \"poll:2\"\n",
                Renewed,
            ),
            (
                "pending-time-issued",
                "[[rule]]\ndisposition = \"pending\"\nresolve = \"after:300\"\n",
                Renewed,
            ),
            (
                "pending-poll-denied",
                "[[rule]]\ndisposition = \"pending\"\nresolve = \"poll:1\"\nto = \"denied\"\n",
                RolledBack,
            ),
            (
                "pending-admin",
                "[[rule]]\ndisposition = \"pending\"\nresolve = \"admin\"\n",
                Pending,
            ),
            // EST simplereenroll has no "out of band": the CA refuses instead.
            (
                "issued-out-of-band",
                "[[rule]]\ndisposition = \"issued-out-of-band\"\n",
                RolledBack,
            ),
            ("revoked", "[[rule]]\ndisposition = \"revoked\"\n", Renewed),
            (
                "template-pends",
                &format!(
                    "[[template]]\noid = \"{}\"\nname = \"SmartcardUser\"\nrenewals_pend = true\n",
                    renewal_client::sample::SAMPLE_TEMPLATE_OID
                ),
                Pending,
            ),
        ];
        for (name, ca, expected) in dispositions {
            out.push(Scenario {
                ca: ca.to_string(),
                ..base(format!("ca/{name}/{m}"), mode, expected)
            });
        }
        for (name, ca) in [
            ("issue", ""),
            ("deny", "[[rule]]\ndisposition = \"deny\"\n"),
            (
                "pending-poll",
                "[[rule]]\ndisposition = \"pending\"\nresolve = \"poll:1\"\n",
            ),
        ] {
            let expected = if name == "deny" { RolledBack } else { Renewed };
            out.push(Scenario {
                ca: format!("response_style = \"adcs\"\n{ca}"),
                ..base(format!("adcs/{name}/{m}"), mode, expected)
            });
        }
        // Transport faults and bad answers, on the first request (what a network does: the
        // re-send goes through). A lost answer — dropped before or after the CA read the
        // request, HTTP 5xx, a body that does not arrive whole or readable — is re-sent, the
        // same bytes, and the CA's decision (the certificate it issued the first time, or
        // issues now) is installed: renewed. A wrong-key certificate or a wrong signer is an
        // answer, not a lost one: it is refused and rolled back, never re-sent.
        let faults: [(&str, Expected); 10] = [
            ("delay:100", Renewed),
            ("drop-before-read", Renewed),
            ("drop-after-read", Renewed),
            ("http:500", Renewed),
            ("http:503", Renewed),
            ("malformed-body", Renewed),
            ("wrong-content-type", Renewed),
            ("truncated", Renewed),
            ("wrong-key-certificate", RolledBack),
            // Direct, a CMC answer signed by another key is refused by the client: rolled back.
            // A certs-only answer (simplereenroll) has no signer to get wrong: renewed.
            // Through a gateway, the gateway refuses the upstream's unverifiable answer with a
            // 502 (a lost answer to the client), and the client's re-send gets the upstream's
            // record of its decision, signed right: renewed in every mode.
            (
                "wrong-signer",
                if cmc && route.is_none() {
                    RolledBack
                } else {
                    Renewed
                },
            ),
        ];
        for (fault, expected) in faults {
            out.push(Scenario {
                ca: format!("[[rule]]\nrequest = 1\nfault = \"{fault}\"\n"),
                ..base(
                    format!("net/{}/{m}", fault.replace(':', "-")),
                    mode,
                    expected,
                )
            });
        }
        // The CA unreachable every time (dropped before it reads, or 503 from a proxy): the
        // re-sends are exhausted and the renewal rolls back. (An answer lost after the CA
        // decided is not lost again: the re-send is answered from its record.)
        for fault in ["drop-before-read", "http:503"] {
            out.push(Scenario {
                ca: format!("[[rule]]\nfault = \"{fault}\"\n"),
                ..base(
                    format!("net/{}-always/{m}", fault.replace(':', "-")),
                    mode,
                    RolledBack,
                )
            });
        }
        // Card faults at each step. Signatures: #1 TLS, #2 PKCS#10, #3-#4 CMS signers.
        let card: Vec<(&str, CommandKind, u32, Fault, Expected)> = vec![
            (
                "generate-fails",
                CommandKind::Generate,
                1,
                Fault::Fail(0x6F00),
                RolledBack,
            ),
            (
                "generate-card-full",
                CommandKind::Generate,
                1,
                Fault::Fail(0x6A84),
                RolledBack,
            ),
            (
                "generate-pulled-after",
                CommandKind::Generate,
                1,
                Fault::RemoveAfter,
                RecoveredRolledBack,
            ),
            (
                "generate-pulled-before",
                CommandKind::Generate,
                1,
                Fault::RemoveBefore,
                RecoveredRolledBack,
            ),
            (
                "tls-signature-fails",
                CommandKind::Sign,
                1,
                Fault::Fail(0x6A80),
                RolledBack,
            ),
            (
                "pop-signature-fails",
                CommandKind::Sign,
                2,
                Fault::Fail(0x6A80),
                RolledBack,
            ),
            (
                "cms-new-key-signature-fails",
                CommandKind::Sign,
                3,
                Fault::Fail(0x6A80),
                if cmc { RolledBack } else { Renewed },
            ),
            (
                "cms-old-key-signature-fails",
                CommandKind::Sign,
                4,
                Fault::Fail(0x6A80),
                if cmc { RolledBack } else { Renewed },
            ),
            (
                "install-fails",
                CommandKind::PutData,
                1,
                Fault::Fail(0x6A84),
                RolledBack,
            ),
            // The certificate goes to the card in chained PUT DATA commands; a chunk failing
            // mid-chain must not leave the card refusing what comes next (the rollback).
            (
                "install-chunk-fails",
                CommandKind::PutData,
                2,
                Fault::Fail(0x6F00),
                RolledBack,
            ),
            // Installing failed: the run rolls back (the new certificate is abandoned, the old one
            // stays valid); the card was gone, so `recover` finishes that rollback.
            (
                "install-pulled-before",
                CommandKind::PutData,
                1,
                Fault::RemoveBefore,
                RecoveredRolledBack,
            ),
            (
                "delete-old-pulled-before",
                CommandKind::MoveKey,
                1,
                Fault::RemoveBefore,
                RecoveredCompleted,
            ),
            (
                "move-pulled-before",
                CommandKind::MoveKey,
                2,
                Fault::RemoveBefore,
                RecoveredCompleted,
            ),
            (
                "move-pulled-after",
                CommandKind::MoveKey,
                2,
                Fault::RemoveAfter,
                RecoveredCompleted,
            ),
            (
                "slow-card",
                CommandKind::Any,
                3,
                Fault::Delay(30_000),
                Renewed,
            ),
        ];
        for (name, kind, nth, fault, expected) in card {
            out.push(Scenario {
                card_faults: vec![(kind, nth, fault)],
                ..base(format!("card/{name}/{m}"), mode, expected)
            });
        }
        out.push(Scenario {
            capacity: 1,
            ..base(format!("card/capacity-1/{m}"), mode, RolledBack)
        });
        // PIN: a wrong PIN fails the TLS signature before any card work; one prompt, nothing
        // changes. (A blocked PIN is the same path with 0 tries.)
        out.push(Scenario {
            pin: "000000",
            ..base(format!("pin/wrong/{m}"), mode, RolledBack)
        });
        out.push(Scenario {
            pin: "000000",
            pin_retries: 1,
            ..base(format!("pin/blocks-after-one-try/{m}"), mode, RolledBack)
        });
        // A PIN-always key in 9A: every signature needs its own VERIFY, and the new key is
        // made with the same policy — the TLS signature, then the new key's (PKCS#10, and the
        // CMS signer in full CMC) and the old key's CMS signature: a prompt each.
        out.push(Scenario {
            pin_policy: PinPolicy::Always,
            prompts: if cmc { 4 } else { 2 },
            ..base(format!("pin/always/{m}"), mode, Renewed)
        });
        // A template that renews only attested keys: the card's attestation of the new key
        // goes in the PKCS#10 (read without the PIN: still one prompt); without it, the CA
        // refuses and the new key goes.
        // CMP has no place for an attestation: refused before the PIN or a key (no prompt).
        out.push(Scenario {
            ca: attested_keys_only(),
            attest: true,
            prompts: usize::from(mode != Mode::Cmp),
            ..base(
                format!("attest/required/{m}"),
                mode,
                if mode == Mode::Cmp {
                    RolledBack
                } else {
                    Renewed
                },
            )
        });
        out.push(Scenario {
            ca: attested_keys_only(),
            ..base(format!("attest/missing/{m}"), mode, RolledBack)
        });
        // Keys that need a touch: every signature waits for one ("always": the TLS signature
        // and the new key's, each of them; "cached": one per key within 15 s) — the user
        // touches, still one PIN prompt; nobody touches: the card times out (6982) and the
        // attempt rolls back with nothing left on the card.
        for (name, policy) in [
            ("always", TouchPolicy::Always),
            ("cached", TouchPolicy::Cached),
        ] {
            out.push(Scenario {
                touch: Touch::Given {
                    policy,
                    after_ms: 20,
                },
                ..base(format!("touch/{name}/{m}"), mode, Renewed)
            });
        }
        out.push(Scenario {
            touch: Touch::NeverComes { timeout_ms: 300 },
            ..base(format!("touch/never-comes/{m}"), mode, RolledBack)
        });
        // A management key stored under the PIN (what enterprise setups do with ykman): found
        // there after the renewal's one PIN verification — still one prompt.
        out.push(Scenario {
            protected_management_key: true,
            ..base(format!("mgmt/pin-protected/{m}"), mode, Renewed)
        });
        // Cards that cannot move or delete keys (a YubiKey 5.4, a plain PIV card): a renewal
        // would strand the new key outside 9A, so it is refused before anything is made.
        for model in [CardModel::YubiKey54, CardModel::Piv] {
            out.push(Scenario {
                model,
                ..base(format!("model/{}/{m}", model.name()), mode, RolledBack)
            });
        }
        // A rule for the second request does not touch the first.
        out.push(Scenario {
            ca: "[[rule]]\nrequest = 2\ndisposition = \"deny\"\n".into(),
            ..base(format!("ca/rule-for-request-2/{m}"), mode, Renewed)
        });
        // Crash at every journal point, then recover.
        for point in CrashPoint::ALL {
            let (ca, expected) = match point {
                CrashPoint::RollbackIntent => {
                    ("[[rule]]\ndisposition = \"deny\"\n", RecoveredRolledBack)
                }
                CrashPoint::InstallIntent | CrashPoint::Installed | CrashPoint::SupersedeIntent => {
                    ("", RecoveredCompleted)
                }
                _ => ("", RecoveredRolledBack),
            };
            out.push(Scenario {
                ca: ca.into(),
                crash: Some(point),
                // Crashing right after `Begin` happens before the TLS handshake: no PIN yet.
                prompts: usize::from(point != CrashPoint::Begin),
                ..base(format!("crash/{point:?}/{m}"), mode, expected)
            });
        }
        // RSA-2048 keys (TLS 1.2).
        for (name, ca, expected) in [
            ("issue", "", Renewed),
            ("deny", "[[rule]]\ndisposition = \"deny\"\n", RolledBack),
        ] {
            out.push(Scenario {
                ca: ca.into(),
                key: KeyAlgorithm::Rsa2048,
                ..base(format!("rsa2048/{name}/{m}"), mode, expected)
            });
        }
        // The other key types found on cards renew onto their own type (P-384 signs with
        // SHA-384; RSA-3072 over TLS 1.2). RSA-4096 is left to the end-to-end tests: its key
        // generation alone would double the run.
        for key in [KeyAlgorithm::EcP384, KeyAlgorithm::Rsa3072] {
            out.push(Scenario {
                key,
                ..base(
                    format!("keys/{}/issue/{m}", key.config_name()),
                    mode,
                    Renewed,
                )
            });
        }
    }
    out
}

/// The scenarios with the simulated CA's key of type `key` (sim-ca's `ca_key`; the default CA
/// is RSA-2048, as ADCS). A scenario that names its own CA key keeps it.
pub fn with_ca_key(scenarios: Vec<Scenario>, key: KeyAlgorithm) -> Vec<Scenario> {
    scenarios
        .into_iter()
        .map(|mut s| {
            let names_key = s.ca.lines().any(|l| l.trim_start().starts_with("ca_key"));
            if !names_key {
                // Top-level keys go before the first table.
                s.ca = format!("ca_key = \"{}\"\n{}", key.config_name(), s.ca);
            }
            s
        })
        .collect()
}

#[cfg(test)]
mod expected_tests {
    use super::Expected;

    #[test]
    fn every_outcome_name_reads_back_and_no_two_share_one() {
        let mut names = std::collections::BTreeSet::new();
        for e in Expected::ALL {
            assert_eq!(Expected::from_name(e.name()), Some(e));
            assert_eq!(e.to_string(), e.name());
            names.insert(e.name());
        }
        assert_eq!(names.len(), Expected::ALL.len());
        assert_eq!(Expected::from_name("Renewed"), None);
    }
}
