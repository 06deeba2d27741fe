//! Certificates made for one test with the `openssl` program, and a cluster that accepts
//! only TLS connections (`ssl = on`, `hostssl` lines only in `pg_hba.conf`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{PgCluster, TestDb, TestkitError};

/// The role that logs in with a client certificate (`cert` in `pg_hba.conf`).
pub const CERT_ROLE: &str = "cdc_cert_user";

/// A test CA, a server certificate it signed (for `localhost` only), a client
/// certificate for [`CERT_ROLE`], and a second CA that signed none of them.
#[derive(Debug, Clone)]
pub struct TestCerts {
    /// The CA that signed the server and client certificates (PEM).
    pub ca: PathBuf,
    /// A CA that signed nothing the server shows.
    pub other_ca: PathBuf,
    /// The server's certificate (PEM), valid for `localhost` and no other name.
    pub server_cert: PathBuf,
    /// The server's key (PEM).
    pub server_key: PathBuf,
    /// The client certificate for [`CERT_ROLE`] (PEM).
    pub client_cert: PathBuf,
    /// The client certificate's key (PEM).
    pub client_key: PathBuf,
}

impl TestCerts {
    /// Makes the certificates under `dir` (elliptic-curve keys, valid for two days).
    pub fn generate(dir: &Path) -> Result<TestCerts, TestkitError> {
        fs::create_dir_all(dir).map_err(|e| TestkitError::io("create", dir, e))?;
        let path = |name: &str| dir.join(name);
        for ca in ["ca", "other-ca"] {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=totesys-cdc test {ca}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                &path(&format!("{ca}.key")).display().to_string(),
                "-out",
                &path(&format!("{ca}.crt")).display().to_string(),
            ])?;
        }
        let sign = |name: &str, subject: &str, extensions: &str| -> Result<(), TestkitError> {
            let ext = path(&format!("{name}.ext"));
            fs::write(&ext, extensions).map_err(|e| TestkitError::io("write", &ext, e))?;
            openssl(&[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                subject,
                "-keyout",
                &path(&format!("{name}.key")).display().to_string(),
                "-out",
                &path(&format!("{name}.csr")).display().to_string(),
            ])?;
            openssl(&[
                "x509",
                "-req",
                "-in",
                &path(&format!("{name}.csr")).display().to_string(),
                "-CA",
                &path("ca.crt").display().to_string(),
                "-CAkey",
                &path("ca.key").display().to_string(),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext.display().to_string(),
                "-out",
                &path(&format!("{name}.crt")).display().to_string(),
            ])
        };
        sign(
            "server",
            "/CN=localhost",
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )?;
        sign(
            "client",
            &format!("/CN={CERT_ROLE}"),
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=clientAuth\n",
        )?;
        Ok(TestCerts {
            ca: path("ca.crt"),
            other_ca: path("other-ca.crt"),
            server_cert: path("server.crt"),
            server_key: path("server.key"),
            client_cert: path("client.crt"),
            client_key: path("client.key"),
        })
    }

    /// The client key encrypted with `password` (PKCS #8, AES-256), as `client.key.enc`;
    /// the password reaches openssl through its environment, not its arguments.
    pub fn encrypted_client_key(&self, password: &str) -> Result<PathBuf, TestkitError> {
        let out = self.client_key.with_extension("key.enc");
        let status = Command::new("openssl")
            .args([
                "pkcs8",
                "-topk8",
                "-v2",
                "aes-256-cbc",
                "-passout",
                "env:TESTKIT_KEY_PASSWORD",
                "-in",
            ])
            .arg(&self.client_key)
            .arg("-out")
            .arg(&out)
            .env("TESTKIT_KEY_PASSWORD", password)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| TestkitError::spawn("openssl pkcs8", e))?;
        if !status.status.success() {
            return Err(TestkitError::Command {
                what: format!(
                    "openssl pkcs8 failed: {}",
                    String::from_utf8_lossy(&status.stderr).trim()
                ),
            });
        }
        Ok(out)
    }
}

fn openssl(args: &[&str]) -> Result<(), TestkitError> {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .map_err(|e| TestkitError::spawn("openssl", e))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(TestkitError::Command {
            what: format!(
                "openssl {}: {}",
                args.first().copied().unwrap_or_default(),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        })
    }
}

impl PgCluster {
    /// Turns TLS on with `certs` and lets TCP clients in over TLS only: by password, or
    /// for [`CERT_ROLE`] by its client certificate; restarts the server.
    pub fn require_tls(&self, certs: &TestCerts) -> Result<(), TestkitError> {
        let data = self.root.join("data");
        for (from, to) in [
            (&certs.server_cert, "server.crt"),
            (&certs.server_key, "server.key"),
            (&certs.ca, "root.crt"),
        ] {
            let target = data.join(to);
            fs::copy(from, &target).map_err(|e| TestkitError::io("copy", &target, e))?;
        }
        crate::cluster::own_private(&data.join("server.key"))?;
        let conf = data.join("postgresql.conf");
        let mut text = fs::read_to_string(&conf).map_err(|e| TestkitError::io("read", &conf, e))?;
        text.push_str(
            "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
             ssl_ca_file = 'root.crt'\n",
        );
        fs::write(&conf, text).map_err(|e| TestkitError::io("write", &conf, e))?;
        let hba = format!(
            "local all all trust\nlocal replication all trust\n\
             hostssl all {CERT_ROLE} 127.0.0.1/32 cert\n\
             hostssl replication {CERT_ROLE} 127.0.0.1/32 cert\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n\
             hostssl replication all 127.0.0.1/32 scram-sha-256\n"
        );
        let hba_path = data.join("pg_hba.conf");
        fs::write(&hba_path, hba).map_err(|e| TestkitError::io("write", &hba_path, e))?;
        crate::cluster::give_to_owner(&self.root)?;
        self.stop()?;
        self.start("pg_ctl start with TLS required", 60)
    }
}

/// A TLS-only cluster of one test's own, in a temporary directory, with its certificates
/// and a database; stopped when dropped.
#[derive(Debug)]
pub struct TlsCluster {
    /// The cluster.
    pub cluster: PgCluster,
    /// The certificates it was set up with.
    pub certs: TestCerts,
    /// A database in it.
    pub db: TestDb,
    _dir: tempfile::TempDir,
}

impl TlsCluster {
    /// Makes certificates, starts a cluster that requires TLS and creates a database.
    pub async fn start() -> Result<TlsCluster, TestkitError> {
        let dir =
            tempfile::tempdir().map_err(|e| TestkitError::io("create", Path::new("/tmp"), e))?;
        crate::open_to_postgres(dir.path())?;
        let certs = TestCerts::generate(&dir.path().join("certs"))?;
        let cluster = PgCluster::ensure_running(&dir.path().join("pg"))?;
        cluster.require_tls(&certs)?;
        let db = TestDb::create_in(cluster.clone()).await?;
        Ok(TlsCluster {
            cluster,
            certs,
            db,
            _dir: dir,
        })
    }

    /// A superuser connection string to the database through `host`, with `tls` settings
    /// (`sslmode=… sslrootcert=…`) added.
    pub fn conn(&self, host: &str, tls: &str) -> String {
        format!(
            "host={host} port={} user=postgres password={} dbname={} {tls}",
            self.cluster.port,
            crate::SUPERUSER_PASSWORD,
            self.db.name
        )
    }

    /// [`TlsCluster::conn`] through `localhost` under `sslmode=verify-full` with the test CA.
    pub fn verify_full(&self) -> String {
        self.conn(
            "localhost",
            &format!(
                "sslmode=verify-full sslrootcert={}",
                self.certs.ca.display()
            ),
        )
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        let _ = self.cluster.stop();
    }
}
