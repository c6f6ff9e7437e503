//! Starting the server: loading the config and the files it names as one
//! set ([`Loaded`], also what `check` and a reload use), then, in an order
//! that matters, binding the listeners, dropping root, opening the spool and
//! the control socket, and detaching.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use mio::Interest;
use rustls::ServerConfig;

use super::{Owner, Server, READ_CHUNK};
use crate::auth::{FailureTracker, Passwords};
use crate::config::Config;
use crate::deliver::local::LocalDelivery;
use crate::deliver::remote::RemoteDelivery;
use crate::deliver::route::Router;
use crate::durable::Durability;
use crate::inbound::SpaceCheck;
use crate::net::listen;
use crate::pickup::Pickup;
use crate::queue::spool::Spool;
use crate::queue::{IdMaker, Schedule};
use crate::reactor::{Reactor, Slab};

/// What `serve` runs with: the config and what was loaded from the files it
/// names.
pub struct Loaded {
    pub config: Config,
    pub router: Router,
    pub tls: Option<Arc<ServerConfig>>,
    pub passwords: Option<Passwords>,
    pub remote: RemoteDelivery,
}

impl Loaded {
    /// The config and every file it names (users, aliases, certificate,
    /// passwords, smarthost login), so `check` finds the same errors `serve`
    /// would, and a reload can refuse a broken set as a whole.
    pub fn load(path: &std::path::Path) -> Result<Loaded, crate::config::ConfigError> {
        let config = Config::load(path)?;
        let router = Router::load(&config)?;
        let tls = crate::net::tls::load_server(&config)?;
        let passwords = match &config.passwords {
            Some(path) => Some(Passwords::load(path)?),
            None => None,
        };
        let remote = RemoteDelivery::load(&config)?;
        Ok(Loaded {
            config,
            router,
            tls,
            passwords,
            remote,
        })
    }
}

/// Why `serve` stopped before serving, with the exit status that says so
/// (sysexits.h).
#[derive(Debug)]
pub enum Fatal {
    /// EX_CONFIG: the config cannot be served as it is (root without `user`).
    Config(crate::config::ConfigError),
    /// EX_CANTCREAT: the spool cannot be handed to the mail user.
    Spool(String),
    /// EX_OSERR: a system call failed, the privilege drop among them.
    Io(io::Error),
}

impl Fatal {
    pub fn exit_code(&self) -> u8 {
        match self {
            Fatal::Config(_) => crate::config::EX_CONFIG as u8,
            Fatal::Spool(_) => 73,
            Fatal::Io(_) => 71,
        }
    }
}

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fatal::Config(e) => e.fmt(f),
            Fatal::Spool(e) => f.write_str(e),
            Fatal::Io(e) => e.fmt(f),
        }
    }
}

impl From<io::Error> for Fatal {
    fn from(e: io::Error) -> Fatal {
        Fatal::Io(e)
    }
}

/// Runs the server. Started as root, it binds the listeners (ports below
/// 1024), hands the spool to the mail user and becomes that user before
/// anything else: the spool, the control socket, every message and Maildir
/// file are then made by the mail user, and nothing a client sends is ever
/// handled with root's rights.
pub fn run(loaded: Loaded, daemon: bool) -> Result<(), Fatal> {
    let Loaded {
        config,
        router,
        tls,
        passwords,
        remote,
    } = loaded;
    log::info!(
        "picomta {} starting with {}",
        env!("CARGO_PKG_VERSION"),
        config.path.display()
    );
    let run_as = crate::daemon::plan(&config).map_err(Fatal::Config)?;
    let reactor = Reactor::new()?;
    let mut owners = Slab::new();
    for (index, l) in config.listen.iter().enumerate() {
        let listener = listen::bind(l.addr).map_err(|e| context(e, "listen", &l.addr))?;
        let token = owners.insert_with(|_, _| Owner::Listener(listener, index));
        if let Some(Owner::Listener(listener, _)) = owners.get_mut(token) {
            reactor
                .registry()
                .register(listener, token, Interest::READABLE)?;
        }
        log::info!("listening on {l}");
    }
    if let Some(run_as) = &run_as {
        crate::daemon::prepare_spool(&config.spool, run_as).map_err(Fatal::Spool)?;
        crate::daemon::drop_privileges(run_as)?;
    }
    let mut spool =
        Spool::open(&config.spool).map_err(|e| context(e, "spool", &config.spool.display()))?;
    let mut schedule = Schedule::default();
    let recovered = spool.recover()?;
    if !recovered.is_empty() {
        log::info!("queue: {} messages resumed from the spool", recovered.len());
    }
    for id in recovered {
        schedule.add(id, false);
    }
    match &passwords {
        Some(p) if p.is_empty() => log::warn!("the passwords file has no users: AUTH always fails"),
        Some(p) => log::info!("AUTH: {} users in the passwords file", p.len()),
        None => {}
    }
    let control = crate::control::bind(&config.spool).map_err(|e| {
        context(
            e,
            "control socket",
            &crate::control::path(&config.spool).display(),
        )
    })?;
    let token = owners.insert_with(|_, _| Owner::Control(control));
    if let Some(Owner::Control(control)) = owners.get_mut(token) {
        reactor
            .registry()
            .register(control, token, Interest::READABLE)?;
    }
    let signals = crate::signals::install()?;
    let token = owners.insert_with(|_, _| Owner::Signals(signals));
    if let Some(Owner::Signals(signals)) = owners.get_mut(token) {
        reactor
            .registry()
            .register(signals, token, Interest::READABLE)?;
    }
    let sync_method = config.sync_method;
    let mut server = Server {
        sessions: 0,
        stopping: None,
        config,
        router,
        tls,
        passwords,
        failures: FailureTracker::new(),
        reactor,
        owners,
        spool,
        schedule,
        ids: IdMaker::default(),
        space: SpaceCheck::new(),
        delivery: LocalDelivery::new(),
        remote,
        pickup: Pickup::new(),
        dns_sockets: Vec::new(),
        durability: Durability::new(sync_method),
        barrier_allowed_at: Instant::now(),
        commits: Vec::new(),
        scratch: vec![0; READ_CHUNK],
    };
    let pid_file = crate::daemon::pid_file(&server.config.spool);
    if daemon {
        crate::daemon::detach(&pid_file)?;
    }
    let result = server.run();
    if daemon {
        crate::daemon::remove_pid_file(&pid_file);
    }
    result.map_err(Fatal::from)
}

fn context(e: io::Error, what: &str, value: &dyn std::fmt::Display) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {value}: {e}"))
}
