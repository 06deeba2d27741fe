//! A Kafka-protocol broker (Tansu) run as a process on a free loopback port.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, TestkitError};

/// Where the broker keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerStorage {
    /// Tansu's SQLite engine, in a file under the broker's directory (survives restarts).
    Sqlite,
    /// Tansu's in-memory engine (lost on restart).
    Memory,
}

/// A running Tansu broker; killed on drop.
#[derive(Debug)]
pub struct KafkaBroker {
    child: Option<Child>,
    dir: PathBuf,
    storage: BrokerStorage,
    /// TCP port on 127.0.0.1.
    pub port: u16,
}

impl KafkaBroker {
    /// Starts a broker keeping its files in `dir`.
    pub fn start(dir: &Path, storage: BrokerStorage) -> Result<Self, TestkitError> {
        std::fs::create_dir_all(dir).map_err(|e| TestkitError::io("create", dir, e))?;
        let mut broker = KafkaBroker {
            child: None,
            dir: dir.to_owned(),
            storage,
            port: free_port()?,
        };
        broker.spawn()?;
        Ok(broker)
    }

    /// `bootstrap.servers` for clients.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the broker abruptly (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port and storage.
    pub fn restart(&mut self) -> Result<(), TestkitError> {
        self.kill();
        self.spawn()
    }

    fn spawn(&mut self) -> Result<(), TestkitError> {
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let storage = match self.storage {
            BrokerStorage::Sqlite => "sqlite://tansu.db",
            BrokerStorage::Memory => "memory://tansu/",
        };
        let log_path = self.dir.join("tansu.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| TestkitError::io("open", &log_path, e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| TestkitError::io("open", &log_path, e))?;
        let child = Command::new(find_tansu()?)
            .args([
                "broker",
                "--listener-url",
                &listener,
                "--advertised-listener-url",
                &listener,
            ])
            .args(["--storage-engine", storage])
            .current_dir(&self.dir)
            .env(
                "RUST_LOG",
                std::env::var("TANSU_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| TestkitError::spawn("tansu", e))?;
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(TestkitError::Command {
                        what: format!(
                            "tansu broker exited with {status} (log: {})",
                            log_path.display()
                        ),
                    });
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(TestkitError::Command {
                    what: "tansu broker did not listen within 30 s".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Finds the `tansu` binary: `$TANSU_BIN`, then `PATH`, then `~/.cargo/bin`.
pub fn find_tansu() -> Result<PathBuf, TestkitError> {
    if let Ok(path) = std::env::var("TANSU_BIN") {
        return Ok(PathBuf::from(path));
    }
    let candidates = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("tansu"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .chain(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/tansu")));
    for candidate in candidates {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(TestkitError::Command {
        what: "finding the tansu broker (run scripts/setup, which installs it with `cargo install tansu`)".into(),
    })
}
