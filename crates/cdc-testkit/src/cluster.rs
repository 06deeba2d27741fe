//! A throwaway PostgreSQL cluster with `wal_level=logical`, run from the system's binaries.

use std::fs::{self, File};
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::TestkitError;

/// Password of the cluster's `postgres` superuser (the cluster only listens on loopback).
pub const SUPERUSER_PASSWORD: &str = "postgres";

/// Roles created in every cluster, one per authentication method, all with `REPLICATION`.
pub const AUTH_ROLES: [(&str, &str); 4] = [
    ("cdc_trust", "trust"),
    ("cdc_password", "password"),
    ("cdc_md5", "md5"),
    ("cdc_scram", "scram-sha-256"),
];

/// Password of every role in [`AUTH_ROLES`].
pub const AUTH_ROLE_PASSWORD: &str = "secret-pw";

/// A PostgreSQL cluster in a directory of its own, listening on 127.0.0.1.
#[derive(Debug, Clone)]
pub struct PgCluster {
    /// Directory holding the data directory, log and port file.
    pub root: PathBuf,
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// Directory of `initdb`, `pg_ctl`, `pg_recvlogical`, ….
    pub bin_dir: PathBuf,
}

impl PgCluster {
    /// Starts the cluster under `root`, creating it first when it does not exist;
    /// returns the running one when it is already up.
    pub fn ensure_running(root: &Path) -> Result<Self, TestkitError> {
        Self::ensure_running_with(root, &[])
    }

    /// Like [`PgCluster::ensure_running`], with extra `postgresql.conf` settings for a new cluster.
    pub fn ensure_running_with(
        root: &Path,
        settings: &[(&str, &str)],
    ) -> Result<Self, TestkitError> {
        fs::create_dir_all(root).map_err(|e| TestkitError::io("create", root, e))?;
        let lock_path = root.join("cluster.lock");
        let lock =
            File::create(&lock_path).map_err(|e| TestkitError::io("create", &lock_path, e))?;
        lock.lock()
            .map_err(|e| TestkitError::io("lock", &lock_path, e))?;

        let bin_dir = find_bin_dir()?;
        let data = root.join("data");
        let port_file = root.join("port");
        if !data.join("PG_VERSION").exists() {
            init_cluster(&bin_dir, root, &data, settings)?;
        }
        let mut cluster = PgCluster {
            root: root.to_owned(),
            port: 0,
            bin_dir,
        };
        if let Some(port) = read_port(&port_file) {
            cluster.port = port;
            if cluster.pg_ctl_quiet(&["status"]) {
                return Ok(cluster);
            }
        }
        cluster.port = free_port()?;
        fs::write(&port_file, cluster.port.to_string())
            .map_err(|e| TestkitError::io("write", &port_file, e))?;
        cluster.start("pg_ctl start", 60)?;
        Ok(cluster)
    }

    /// Starts the stopped cluster on its port, waiting up to `timeout_secs`; a failure
    /// says `what` and ends with the server log's last lines.
    pub(crate) fn start(&self, what: &str, timeout_secs: u32) -> Result<(), TestkitError> {
        let data = self.root.join("data");
        let log = self.root.join("postgres.log");
        let options = format!("-p {} -k {}", self.port, data.display());
        let status = self
            .command("pg_ctl")
            .args(["start", "-w", "-t", &timeout_secs.to_string(), "-D"])
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-o", &options])
            .stdout(Stdio::null())
            .status()
            .map_err(|e| TestkitError::spawn("pg_ctl", e))?;
        if status.success() {
            return Ok(());
        }
        let tail = fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(10).collect();
        Err(TestkitError::Command {
            what: format!("{what} (log {}): {}", log.display(), tail.join(" | ")),
        })
    }

    /// The cluster under `root` as last started, whether or not it is running now.
    pub fn existing(root: &Path) -> Option<Self> {
        let port = read_port(&root.join("port"))?;
        Some(PgCluster {
            root: root.to_owned(),
            port,
            bin_dir: find_bin_dir().ok()?,
        })
    }

    /// Stops the cluster immediately; the files stay until `root` is removed.
    pub fn stop(&self) -> Result<(), TestkitError> {
        if self.pg_ctl_quiet(&["stop", "-m", "immediate", "-w"]) {
            Ok(())
        } else {
            Err(TestkitError::Command {
                what: "pg_ctl stop".into(),
            })
        }
    }

    /// Stops the cluster in immediate mode (a crash: no shutdown checkpoint, recovery on
    /// start) and starts it again on the same port.
    pub fn restart_immediate(&self) -> Result<(), TestkitError> {
        self.stop()?;
        self.start("pg_ctl start after an immediate stop", 120)
    }

    /// A libpq connection string for `user` to `dbname` over TCP.
    pub fn conn_string(&self, user: &str, password: &str, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} password={password} dbname={dbname}",
            self.port
        )
    }

    /// A superuser connection string to `dbname`.
    pub fn superuser_conn_string(&self, dbname: &str) -> String {
        self.conn_string("postgres", SUPERUSER_PASSWORD, dbname)
    }

    /// A `Command` for one of the server's programs, run as the `postgres` system user when we are root.
    pub fn command(&self, program: &str) -> Command {
        command_as_owner(&self.bin_dir.join(program))
    }

    fn pg_ctl_quiet(&self, args: &[&str]) -> bool {
        self.command("pg_ctl")
            .args(args)
            .arg("-D")
            .arg(self.root.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

/// Lets other users (the `postgres` user a cluster may run as) into `dir`, a temporary
/// directory a test or bench keeps its own cluster under.
pub fn open_to_postgres(dir: &Path) -> Result<(), TestkitError> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(|source| TestkitError::Io {
        op: "open to the postgres user",
        path: dir.display().to_string(),
        source,
    })
}

/// Finds PostgreSQL's server binaries: `$PG_BIN_DIR`, then the newest `/usr/lib/postgresql/*/bin`.
pub fn find_bin_dir() -> Result<PathBuf, TestkitError> {
    if let Ok(dir) = std::env::var("PG_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or(TestkitError::NoServer)
}

fn init_cluster(
    bin_dir: &Path,
    root: &Path,
    data: &Path,
    extra: &[(&str, &str)],
) -> Result<(), TestkitError> {
    let pwfile = root.join("pwfile");
    fs::write(&pwfile, SUPERUSER_PASSWORD).map_err(|e| TestkitError::io("write", &pwfile, e))?;
    // The server refuses to run as root: hand the directory to the `postgres` user.
    if let Some((uid, gid)) = owner_ids() {
        chown_tree(root, uid, gid)?;
    }
    let output = command_as_owner(&bin_dir.join("initdb"))
        .arg("-D")
        .arg(data)
        .args([
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
        ])
        .args(["--locale=C", "--no-sync"])
        .arg(format!("--pwfile={}", pwfile.display()))
        .output()
        .map_err(|e| TestkitError::spawn("initdb", e))?;
    if !output.status.success() {
        return Err(TestkitError::Command {
            what: format!("initdb: {}", String::from_utf8_lossy(&output.stderr).trim()),
        });
    }
    let conf = data.join("postgresql.conf");
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(&conf)
        .map_err(|e| TestkitError::io("open", &conf, e))?;
    let settings = "\n# totesys-cdc throwaway cluster\n\
        listen_addresses = '127.0.0.1'\n\
        wal_level = logical\n\
        max_wal_senders = 64\n\
        max_replication_slots = 64\n\
        max_connections = 300\n\
        fsync = off\n\
        synchronous_commit = off\n\
        full_page_writes = off\n\
        shared_buffers = 128MB\n\
        max_wal_size = 2GB\n\
        wal_sender_timeout = 60s\n";
    file.write_all(settings.as_bytes())
        .map_err(|e| TestkitError::io("write", &conf, e))?;
    for (name, value) in extra {
        writeln!(file, "{name} = '{value}'").map_err(|e| TestkitError::io("write", &conf, e))?;
    }

    let mut hba = String::from("local all all trust\nlocal replication all trust\n");
    for (role, method) in AUTH_ROLES {
        hba.push_str(&format!("host all {role} 127.0.0.1/32 {method}\n"));
        hba.push_str(&format!("host replication {role} 127.0.0.1/32 {method}\n"));
    }
    hba.push_str("host all all 127.0.0.1/32 scram-sha-256\n");
    hba.push_str("host replication all 127.0.0.1/32 scram-sha-256\n");
    let hba_path = data.join("pg_hba.conf");
    fs::write(&hba_path, hba).map_err(|e| TestkitError::io("write", &hba_path, e))?;
    if let Some((uid, gid)) = owner_ids() {
        chown_tree(root, uid, gid)?;
    }
    Ok(())
}

fn read_port(path: &Path) -> Option<u16> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// An unused TCP port on loopback (bound, then released).
pub fn free_port() -> Result<u16, TestkitError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| TestkitError::spawn("bind", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| TestkitError::spawn("bind", e))
}

/// When running as root: the uid and gid of the `postgres` system user.
/// Hands `root` and everything under it to the `postgres` user when we run as root.
pub(crate) fn give_to_owner(root: &Path) -> Result<(), TestkitError> {
    match owner_ids() {
        Some((uid, gid)) => chown_tree(root, uid, gid),
        None => Ok(()),
    }
}

/// Makes `path` readable by its owner only (the server refuses a key others can read).
pub(crate) fn own_private(path: &Path) -> Result<(), TestkitError> {
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .map_err(|e| TestkitError::io("chmod 0600", path, e))
}

fn owner_ids() -> Option<(u32, u32)> {
    if !is_root() {
        return None;
    }
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.first() == Some(&"postgres") && fields.len() > 3 {
            Some((fields[2].parse().ok()?, fields[3].parse().ok()?))
        } else {
            None
        }
    })
}

fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

fn command_as_owner(program: &Path) -> Command {
    let mut command = Command::new(program);
    if let Some((uid, gid)) = owner_ids() {
        command.uid(uid).gid(gid);
        command.env("HOME", "/tmp");
        command.current_dir("/tmp");
    }
    command
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), TestkitError> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(|e| TestkitError::io("chown", path, e))?;
    if path.is_dir() {
        let mut permissions = fs::metadata(path)
            .map_err(|e| TestkitError::io("stat", path, e))?
            .permissions();
        permissions.set_mode(0o700);
        fs::set_permissions(path, permissions).map_err(|e| TestkitError::io("chmod", path, e))?;
        for entry in fs::read_dir(path).map_err(|e| TestkitError::io("list", path, e))? {
            let entry = entry.map_err(|e| TestkitError::io("list", path, e))?;
            chown_tree(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}
