//! A PostgreSQL cluster the load may take down while it runs: a throwaway cluster as
//! `scripts/pg-temp.sh` makes it (its directory holds `data/`, `server.log` and the Unix
//! socket), stopped as a crash would stop it (`pg_ctl stop -m immediate`), started again with
//! the options it was started with, and its client backends terminated as an administrator
//! would (`pg_terminate_backend`).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// A cluster made by `scripts/pg-temp.sh`.
#[derive(Clone, Debug)]
pub struct Cluster {
    dir: PathBuf,
    pg_ctl: PathBuf,
}

impl Cluster {
    /// The cluster in `dir` (the directory `scripts/pg-temp.sh` printed).
    pub fn attach(dir: &Path) -> Result<Self, String> {
        if !dir.join("data").join("PG_VERSION").is_file() {
            return Err(format!(
                "{}: not a cluster made by scripts/pg-temp.sh (no data/PG_VERSION)",
                dir.display()
            ));
        }
        let pg_ctl = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(|e| format!("/usr/lib/postgresql: {e} (Debian package postgresql)"))?
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin").join("pg_ctl"))
            .filter(|p| p.exists())
            .max()
            .ok_or("no pg_ctl under /usr/lib/postgresql (Debian package postgresql)")?;
        Ok(Self {
            dir: dir.to_path_buf(),
            pg_ctl,
        })
    }

    /// The URL of `database` in this cluster (over its Unix socket).
    pub fn url(&self, database: &str) -> String {
        let host = self.dir.display().to_string().replace('/', "%2F");
        format!("postgresql://postgres@{host}/{database}")
    }

    /// Stops the server at once, as a crash would: no checkpoint, every connection cut.
    pub fn crash(&self) -> Result<(), String> {
        self.run_pg_ctl(&["-m", "immediate", "-w", "stop"])
    }

    /// Starts the server again (it recovers from its WAL), as `scripts/pg-temp.sh` started it.
    pub fn start(&self) -> Result<(), String> {
        let options = format!(
            "-c listen_addresses= -k {} -c max_connections=200",
            self.dir.display()
        );
        let log = self.dir.join("server.log").display().to_string();
        self.run_pg_ctl(&["-l", &log, "-w", "-o", &options, "start"])
    }

    /// Whether the server answers.
    pub fn running(&self) -> bool {
        self.run_pg_ctl(&["status"]).is_ok()
    }

    /// Terminates every client backend but this one (`pg_terminate_backend`), as an
    /// administrator would; how many.
    pub fn terminate_backends(&self) -> Result<usize, String> {
        let rows = self.admin()?.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'",
            &[],
        );
        rows.map(|r| r.len()).map_err(explain)
    }

    /// Creates an empty database named `name` (dropping one of that name first); its URL.
    pub fn fresh_database(&self, name: &str) -> Result<String, String> {
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("{name}: not a plain database name"));
        }
        let mut admin = self.admin()?;
        // Two statements, two round trips: CREATE DATABASE refuses to run in the implicit
        // transaction of a multi-statement query.
        for statement in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            admin.batch_execute(&statement).map_err(explain)?;
        }
        Ok(self.url(name))
    }

    fn admin(&self) -> Result<postgres::Client, String> {
        postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .map_err(|e| format!("{}: {e}", self.dir.display()))
    }

    /// `pg_ctl -D DIR/data ARGS` as the cluster's owner (`postgres` when we are root: the
    /// server refuses to run as root).
    fn run_pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let data = self.dir.join("data");
        let mut command = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&self.pg_ctl);
            c
        } else {
            Command::new(&self.pg_ctl)
        };
        let out = command
            .arg("-D")
            .arg(&data)
            .args(args)
            .output()
            .map_err(|e| format!("{}: {e}", self.pg_ctl.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

/// The server's message when there is one ("db error" alone says nothing).
fn explain(e: ::postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("PostgreSQL: {}", db.message()),
        None => e.to_string(),
    }
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
