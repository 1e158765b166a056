//! Logical dumps: `pg_dump --format=custom` streamed out, `pg_restore` streamed
//! in, with the installed PostgreSQL client tools. pg_dump's exit status and
//! stderr decide success. Passwords reach the tools through PGPASSWORD in their
//! own environment only; they are never logged or put on a command line.

use std::io;
use std::process::Stdio;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::mpsc;

use serde::{Deserialize, Serialize};

use crate::config::{DbConn, PasswordSource};
use crate::engine::events::Job;
use crate::error::{Error, SourceError};

/// Keep at most this much of a tool's stderr for the error message.
const STDERR_KEEP: usize = 16 * 1024;

/// A database connection with the password resolved.
#[derive(Clone)]
pub struct Db {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    password: Option<String>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password is deliberately left out.
        write!(
            f,
            "{}@{}:{}/{}",
            self.user, self.host, self.port, self.dbname
        )
    }
}

/// How to reach a database, as a plan records it: where the password comes
/// from, never the password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbRef {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    pub password: PasswordSource,
}

impl DbRef {
    /// The config's connection; `host` is used when the config has none.
    pub fn of(conn: &DbConn, host: Option<&str>) -> Result<DbRef, SourceError> {
        let host = conn.host.as_deref().or(host).ok_or_else(|| {
            SourceError::Input(
                "no database host: set `database.host` or let drtool read the instance endpoint"
                    .into(),
            )
        })?;
        Ok(DbRef {
            host: host.to_string(),
            port: conn.port,
            user: conn.user.clone(),
            dbname: conn.dbname.clone(),
            password: conn.password.clone(),
        })
    }

    /// The same server, another database.
    pub fn with_dbname(&self, dbname: &str) -> DbRef {
        DbRef {
            dbname: dbname.to_string(),
            ..self.clone()
        }
    }

    /// Resolves the password (from its variable or file) for a connection.
    pub fn open(&self) -> Result<Db, SourceError> {
        let password = match &self.password {
            PasswordSource::None => None,
            PasswordSource::Env(var) => Some(std::env::var(var).map_err(|_| {
                SourceError::Input(format!(
                    "the database password variable {var} is not set in drtool's environment"
                ))
            })?),
            PasswordSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    SourceError::Input(format!(
                        "cannot read the password file {}: {e}",
                        path.display()
                    ))
                })?;
                Some(text.lines().next().unwrap_or_default().to_string())
            }
        };
        Ok(Db {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            dbname: self.dbname.clone(),
            password,
        })
    }
}

impl std::fmt::Display for DbRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}@{}:{}/{}",
            self.user, self.host, self.port, self.dbname
        )
    }
}

impl Db {
    /// Resolves the config's connection; `host` is used when the config has none.
    pub fn resolve(conn: &DbConn, host: Option<&str>) -> Result<Db, SourceError> {
        DbRef::of(conn, host)?.open()
    }

    pub fn with_dbname(&self, dbname: &str) -> Db {
        Db {
            dbname: dbname.to_string(),
            ..self.clone()
        }
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("PGHOST", &self.host)
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", &self.user)
            .env("PGDATABASE", &self.dbname)
            .env("PGCONNECT_TIMEOUT", "10")
            .env_remove("PGPASSWORD")
            .kill_on_drop(true);
        if let Some(p) = &self.password {
            cmd.env("PGPASSWORD", p);
        }
        cmd
    }

    fn spawn_failed(&self, program: &str, e: io::Error) -> SourceError {
        SourceError::Input(format!(
            "cannot run {program} ({e}): install the PostgreSQL client tools (Debian: postgresql-client)"
        ))
    }

    /// Runs one SQL statement with psql and returns its unaligned output.
    pub async fn query(&self, sql: &str) -> Result<String, SourceError> {
        let out = self
            .command("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| self.spawn_failed("psql", e))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(self.tool_failed("psql", &String::from_utf8_lossy(&out.stderr)))
        }
    }

    fn tool_failed(&self, tool: &str, stderr: &str) -> SourceError {
        let text = stderr.trim();
        let unreachable = text.contains("could not connect")
            || text.contains("Connection refused")
            || text.contains("timeout expired")
            || text.contains("could not translate host name");
        if unreachable {
            SourceError::Unreachable {
                what: format!("PostgreSQL database {}", self.dbname),
                endpoints: format!("{}:{}", self.host, self.port),
                detail: format!("{tool}: {text}"),
            }
        } else {
            SourceError::Failed {
                what: format!("{tool} on {self:?}"),
                detail: text.to_string(),
            }
        }
    }

    /// Whether the database exists, and whether it holds any user relation.
    pub async fn state(&self) -> Result<DbState, SourceError> {
        let admin = self.with_dbname("postgres");
        let exists = admin
            .query(&format!(
                "SELECT count(*) FROM pg_database WHERE datname = {}",
                literal(&self.dbname)
            ))
            .await?;
        if exists != "1" {
            return Ok(DbState::Missing);
        }
        let relations = self
            .query(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND n.nspname NOT LIKE 'pg_toast%' AND c.relkind IN ('r','v','m','S','f','p')",
            )
            .await?;
        Ok(if relations == "0" {
            DbState::Empty
        } else {
            DbState::NotEmpty(relations.parse().unwrap_or(1))
        })
    }

    pub async fn create(&self) -> Result<(), SourceError> {
        self.with_dbname("postgres")
            .query(&format!("CREATE DATABASE {}", identifier(&self.dbname)))
            .await
            .map(|_| ())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "relations", rename_all = "kebab-case")]
pub enum DbState {
    Missing,
    Empty,
    NotEmpty(u64),
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn identifier(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

async fn read_stderr(mut stderr: tokio::process::ChildStderr) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = stderr.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        if buf.len() < STDERR_KEEP {
            buf.extend_from_slice(&chunk[..n.min(STDERR_KEEP - buf.len())]);
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Streams `pg_dump --format=custom` of the database into `tx`. On failure the
/// stream gets an error too, so the pipeline aborts the upload.
/// A cancellation kills pg_dump at once.
pub async fn dump(db: &Db, tx: mpsc::Sender<io::Result<Bytes>>, job: &Job) -> Result<u64, Error> {
    let result = dump_inner(db, &tx, job).await;
    if let Err(e) = &result {
        let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
    }
    result
}

async fn dump_inner(
    db: &Db,
    tx: &mpsc::Sender<io::Result<Bytes>>,
    job: &Job,
) -> Result<u64, Error> {
    let mut child = db
        .command("pg_dump")
        .args(["--format=custom", "--no-password", "--compress=0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| db.spawn_failed("pg_dump", e))?;
    let (Some(mut stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(SourceError::Failed {
            what: "pg_dump".into(),
            detail: "no pipes to the child process".into(),
        }
        .into());
    };
    let errors = tokio::spawn(read_stderr(stderr));
    let mut size = 0u64;
    loop {
        let mut buf = vec![0u8; 256 * 1024];
        let read = tokio::select! {
            r = stdout.read(&mut buf) => r,
            _ = job.cancel_token().cancelled() => {
                let _ = child.kill().await;
                return Err(Error::cancelled("pg_dump was stopped: no point was written"));
            }
        };
        let n = read.map_err(|e| SourceError::Failed {
            what: "reading pg_dump's output".into(),
            detail: e.to_string(),
        })?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        size += n as u64;
        if tx.send(Ok(Bytes::from(buf))).await.is_err() {
            let _ = child.kill().await;
            return Err(SourceError::Stopped("pg_dump".into()).into());
        }
    }
    let status = child.wait().await.map_err(|e| SourceError::Failed {
        what: "pg_dump".into(),
        detail: e.to_string(),
    })?;
    let stderr = errors.await.unwrap_or_default();
    if status.success() {
        Ok(size)
    } else {
        Err(db
            .tool_failed("pg_dump", &format!("{status}: {stderr}"))
            .into())
    }
}

/// Feeds a custom-format dump from `rx` to `pg_restore` into the database.
/// With `clean`, existing objects are dropped first (`--clean --if-exists`).
/// A cancellation kills pg_restore and says the database holds a partial restore.
pub async fn restore(
    db: &Db,
    mut rx: mpsc::Receiver<Bytes>,
    clean: bool,
    job: &Job,
) -> Result<(), Error> {
    let mut cmd = db.command("pg_restore");
    cmd.args(["--no-password", "--no-owner", "--exit-on-error", "--dbname"])
        .arg(&db.dbname);
    if clean {
        cmd.args(["--clean", "--if-exists"]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| db.spawn_failed("pg_restore", e))?;
    let (Some(mut stdin), Some(stderr)) = (child.stdin.take(), child.stderr.take()) else {
        return Err(SourceError::Failed {
            what: "pg_restore".into(),
            detail: "no pipes to the child process".into(),
        }
        .into());
    };
    let errors = tokio::spawn(read_stderr(stderr));
    let stopped = || {
        Error::cancelled(format!(
            "pg_restore was stopped part-way: database {db:?} holds a partial restore; \
             restore again with --existing overwrite, or drop it"
        ))
    };
    let mut write_error = None;
    let fed = async {
        while let Some(chunk) = rx.recv().await {
            if let Err(e) = stdin.write_all(&chunk).await {
                // pg_restore stopped reading: its stderr says why.
                write_error = Some(e);
                break;
            }
        }
        drop(stdin);
        child.wait().await
    };
    let waited = tokio::select! {
        status = fed => Some(status),
        _ = job.cancel_token().cancelled() => None,
    };
    let Some(waited) = waited else {
        let _ = child.kill().await;
        return Err(stopped());
    };
    let status = waited.map_err(|e| SourceError::Failed {
        what: "pg_restore".into(),
        detail: e.to_string(),
    })?;
    let stderr = errors.await.unwrap_or_default();
    match (status.success(), write_error) {
        (true, None) => Ok(()),
        (_, Some(e)) if status.success() => Err(SourceError::Failed {
            what: "pg_restore".into(),
            detail: format!("writing the dump: {e}"),
        }
        .into()),
        _ => Err(db
            .tool_failed("pg_restore", &format!("{status}: {stderr}"))
            .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_is_sql_safe() {
        assert_eq!(literal("a'b"), "'a''b'");
        assert_eq!(identifier("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let conn = DbConn {
            host: Some("db".into()),
            port: 5432,
            user: "app".into(),
            dbname: "orders".into(),
            password: PasswordSource::Env("DRTOOL_TEST_SECRET_PW".into()),
        };
        // SAFETY: a variable only this test reads.
        unsafe { std::env::set_var("DRTOOL_TEST_SECRET_PW", "hunter2") };
        let db = Db::resolve(&conn, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(format!("{db:?}"), "app@db:5432/orders");
        let missing = DbConn {
            password: PasswordSource::Env("DRTOOL_TEST_UNSET_PW".into()),
            ..conn
        };
        let err = Db::resolve(&missing, None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("DRTOOL_TEST_UNSET_PW is not set"), "{err}");
    }
}
