//! Opening the token `--token` names (a PKCS#11 module, a PC/SC reader, or with the `sim`
//! feature the in-process virtual card), with the PIN source the flags choose, and the journal
//! that belongs to that card.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use renewal_client::{
    client::https::SharedToken,
    token::{
        PinSource,
        pin::CountingPinSource,
        pin_sources::{TerminalPin, from_env, from_fd, from_file},
        pinentry::Pinentry,
        piv::ManagementKey,
        spec::TokenSpec,
    },
};

use crate::cli::Common;

/// An opened token, and what to save when done.
pub(crate) struct Opened {
    pub(crate) token: SharedToken,
    sim: Option<SimCard>,
}

/// The in-process virtual card and its file (only in a `renew` built with `--features
/// sim`; a production build cannot hold one).
#[cfg(feature = "sim")]
type SimCard = (Arc<Mutex<sim_card::SimCard>>, PathBuf);
#[cfg(not(feature = "sim"))]
type SimCard = std::convert::Infallible;

impl Opened {
    /// The virtual card's state goes back to its file (atomically).
    pub(crate) fn save(&self) -> Result<(), String> {
        #[cfg(feature = "sim")]
        if let Some((card, path)) = &self.sim {
            let card = card.lock().map_err(|_| "card lock poisoned")?;
            card.state().save(path).map_err(|e| e.to_string())?;
        }
        #[cfg(not(feature = "sim"))]
        if let Some(never) = &self.sim {
            match *never {}
        }
        Ok(())
    }
}

/// The PIN prompts of the token opened last, counted (reported with `--json`).
type CountedPins = Arc<CountingPinSource<Arc<dyn PinSource>>>;
static PROMPTS: Mutex<Option<CountedPins>> = Mutex::new(None);

fn pins(common: &Common) -> Result<Arc<dyn PinSource>, String> {
    let source: Arc<dyn PinSource> = match (&common.pin_env, common.pin_fd, &common.pin_file) {
        (Some(var), _, _) => Arc::new(from_env(var).map_err(|e| e.to_string())?),
        (None, Some(fd), _) => Arc::new(from_fd(fd).map_err(|e| e.to_string())?),
        (None, None, Some(path)) => Arc::new(from_file(path).map_err(|e| e.to_string())?),
        (None, None, None) => match &common.pinentry {
            Some(program) => Arc::new(Pinentry {
                program: program.clone(),
                description: common.pin_description.clone().unwrap_or_else(|| {
                    format!("Renewing the certificate in container {}", common.container)
                }),
            }),
            None => Arc::new(TerminalPin),
        },
    };
    let counted = Arc::new(CountingPinSource::new(source));
    if let Ok(mut last) = PROMPTS.lock() {
        *last = Some(Arc::clone(&counted));
    }
    Ok(counted)
}

pub(crate) fn prompts() -> usize {
    PROMPTS
        .lock()
        .ok()
        .and_then(|p| p.as_ref().map(|p| p.count()))
        .unwrap_or(0)
}

pub(crate) fn open(common: &Common) -> Result<Opened, String> {
    let pins = pins(common)?;
    let key = common.management_key.clone().unwrap_or_default();
    match common
        .token
        .parse::<TokenSpec>()
        .map_err(|e| e.to_string())?
    {
        TokenSpec::Sim(path) => open_sim(path, pins, key),
        TokenSpec::PivPcsc(reader) => open_pcsc(reader.as_deref(), pins, key),
        TokenSpec::Pkcs11 { module, label } => open_pkcs11(&module, label.as_deref(), pins),
    }
}

#[cfg(feature = "sim")]
fn open_sim(path: PathBuf, pins: Arc<dyn PinSource>, key: ManagementKey) -> Result<Opened, String> {
    let state = sim_card::CardState::load(&path).map_err(|e| e.to_string())?;
    let mut applet = sim_card::PivApplet::from_state(state);
    // An in-process card has nobody at its sensor: a key that needs a touch gets
    // one half a second after the card starts waiting, as from a prompt user.
    applet.set_touch_sensor(sim_card::touch::TouchSensor::automatic(
        std::time::Duration::from_millis(500),
    ));
    let card = Arc::new(Mutex::new(sim_card::SimCard::new(applet)));
    let transport =
        renewal_client::token::transport::SimTransport::persisted(Arc::clone(&card), path.clone());
    let token: Box<dyn renewal_client::token::Token + Send> = Box::new(
        renewal_client::token::piv::PivToken::new(transport, pins, key)
            .with_touch_prompt(touch_prompt()),
    );
    Ok(Opened {
        token: Arc::new(Mutex::new(token)),
        sim: Some((card, path)),
    })
}

#[cfg(not(feature = "sim"))]
fn open_sim(
    _path: PathBuf,
    _pins: Arc<dyn PinSource>,
    _key: ManagementKey,
) -> Result<Opened, String> {
    Err("this renew was built without the virtual card: `sim:` tokens need a build with `--features sim` (a test and demonstration build)".into())
}

#[cfg(feature = "pkcs11")]
fn open_pkcs11(
    module: &Path,
    label: Option<&str>,
    pins: Arc<dyn PinSource>,
) -> Result<Opened, String> {
    let token = renewal_client::token::pkcs11::Pkcs11Token::open(module, label, pins)
        .map_err(|e| e.to_string())?;
    let token: Box<dyn renewal_client::token::Token + Send> = Box::new(token);
    Ok(Opened {
        token: Arc::new(Mutex::new(token)),
        sim: None,
    })
}

#[cfg(not(feature = "pkcs11"))]
fn open_pkcs11(_: &Path, _: Option<&str>, _: Arc<dyn PinSource>) -> Result<Opened, String> {
    Err("this renew was built without PKCS#11 support: rebuild with `--features pkcs11`".into())
}

#[cfg(feature = "pcsc")]
fn open_pcsc(
    reader: Option<&str>,
    pins: Arc<dyn PinSource>,
    key: ManagementKey,
) -> Result<Opened, String> {
    let transport = renewal_client::token::transport::PcscTransport::connect(reader)
        .map_err(|e| e.to_string())?;
    let token: Box<dyn renewal_client::token::Token + Send> = Box::new(
        renewal_client::token::piv::PivToken::new(transport, pins, key)
            .with_touch_prompt(touch_prompt()),
    );
    Ok(Opened {
        token: Arc::new(Mutex::new(token)),
        sim: None,
    })
}

/// What the user reads when the card waits for a touch.
#[cfg(any(feature = "sim", feature = "pcsc"))]
fn touch_prompt() -> renewal_client::token::piv::TouchPrompt {
    Arc::new(|slot| {
        eprintln!(
            "renew: touch your key now (the key in slot {slot:02x} needs a touch; it blinks)"
        );
    })
}

#[cfg(not(feature = "pcsc"))]
fn open_pcsc(_: Option<&str>, _: Arc<dyn PinSource>, _: ManagementKey) -> Result<Opened, String> {
    Err("this renew was built without PC/SC support: rebuild with `--features pcsc`".into())
}

/// The journal of this card and container: `--journal`, or
/// `~/.cardrenew/journal-<card>-<container>.jsonl` — one per card, so that a renewal
/// interrupted on one card is never "recovered" against another (recovery also checks the
/// card, whatever file it reads).
pub(crate) fn journal_path(common: &Common, opened: &Opened) -> Result<PathBuf, String> {
    match &common.journal {
        Some(p) => Ok(p.clone()),
        None => {
            let home = std::env::var_os("HOME").ok_or("HOME is not set; pass --journal")?;
            let dir = Path::new(&home).join(".cardrenew");
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let card = renewal_client::client::processor::token_identity(&opened.token)
                .unwrap_or_else(|| "unknown-card".into());
            let slug: String = format!("{card}-{}", common.container)
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            Ok(dir.join(format!("journal-{slug}.jsonl")))
        }
    }
}
