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

use super::RdsError;
use super::{DbConn, PasswordSource};
use crate::engine::events::Job;
use crate::engine::point::PointStream;
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
        let host = conn
            .host
            .as_deref()
            .or(host)
            .ok_or_else(|| SourceError::from(RdsError::NoDbHost))?;
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
        let password =
            match &self.password {
                PasswordSource::None => None,
                PasswordSource::Env(var) => Some(std::env::var(var).map_err(|_| {
                    SourceError::from(RdsError::PasswordEnvUnset { var: var.clone() })
                })?),
                PasswordSource::File(path) => {
                    let text = std::fs::read_to_string(path).map_err(|e| {
                        SourceError::from(RdsError::PasswordFileUnreadable {
                            path: path.clone(),
                            reason: e.to_string(),
                        })
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
        RdsError::ToolMissing {
            program: program.to_string(),
            reason: e.to_string(),
        }
        .into()
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
        } else if text.contains("database \"") && text.contains("\" does not exist") {
            RdsError::DatabaseMissing {
                tool: tool.to_string(),
                db: format!("{self:?}"),
                detail: text.to_string(),
            }
            .into()
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

    /// Drops the database (one this restore created and could not finish).
    pub async fn drop_database(&self) -> Result<(), SourceError> {
        self.with_dbname("postgres")
            .query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                identifier(&self.dbname)
            ))
            .await
            .map(|_| ())
    }

    /// The tables, views, materialized views, sequences and foreign tables of
    /// the database, by schema and name.
    pub async fn relations(&self) -> Result<Vec<Relation>, SourceError> {
        let out = self
            .query(
                "SELECT n.nspname || chr(31) || c.relname FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND n.nspname NOT LIKE 'pg_toast%' AND c.relkind IN ('r','v','m','S','f','p') \
                 ORDER BY 1",
            )
            .await?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once('\u{1f}'))
            .map(|(schema, name)| Relation {
                schema: schema.to_string(),
                name: name.to_string(),
            })
            .collect())
    }
}

/// A relation of a database or of a dump.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Relation {
    pub schema: String,
    pub name: String,
}

impl std::fmt::Display for Relation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// The relations a `pg_restore --list` table of contents creates.
pub fn dump_relations(list: &str) -> Vec<Relation> {
    const KINDS: [&str; 5] = [
        "MATERIALIZED VIEW ",
        "FOREIGN TABLE ",
        "TABLE ",
        "VIEW ",
        "SEQUENCE ",
    ];
    let mut out = Vec::new();
    for line in list.lines() {
        // `215; 1259 16500 TABLE public t1 postgres`: id; catalog oid, oid, kind, schema, name, owner.
        let Some((_, rest)) = line.split_once("; ") else {
            continue;
        };
        let mut parts = rest.splitn(3, ' ');
        let (Some(catalog), Some(_oid), Some(entry)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if catalog != "1259" {
            continue;
        }
        let Some(tail) = KINDS.iter().find_map(|k| entry.strip_prefix(k)) else {
            continue;
        };
        let Some((schema, named)) = tail.split_once(' ') else {
            continue;
        };
        let name = named.rsplit_once(' ').map_or(named, |(name, _owner)| name);
        out.push(Relation {
            schema: schema.to_string(),
            name: name.to_string(),
        });
    }
    out.sort();
    out.dedup();
    out
}

/// Reads the table of contents of a custom-format dump streamed in `rx` with
/// `pg_restore --list`; the rest of the stream is drained so it can be checked.
pub async fn dump_contents(
    db: &Db,
    rx: mpsc::Receiver<Bytes>,
    job: &Job,
) -> Result<Vec<Relation>, Error> {
    let list = toc(db.command("pg_restore"), rx, job, |e| {
        db.spawn_failed("pg_restore", e).into()
    })
    .await?;
    Ok(dump_relations(&list))
}

/// The table of contents (`pg_restore --list`) of a custom-format dump
/// streamed in `rx`, with `cmd` (a `pg_restore` command); the rest of the
/// stream is drained so it can be checked. A `pg_restore` that does not
/// start is said by `spawn_failed`.
pub async fn toc(
    mut cmd: Command,
    mut rx: mpsc::Receiver<Bytes>,
    job: &Job,
    spawn_failed: impl FnOnce(io::Error) -> Error,
) -> Result<String, Error> {
    let mut child = cmd
        .arg("--list")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn_failed)?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(SourceError::Failed {
            what: "pg_restore --list".into(),
            detail: "no pipes to the child process".into(),
        }
        .into());
    };
    // A table of contents is ~100 bytes an entry: 16 MiB is 150 000 entries.
    let listing = tokio::spawn(read_capped(stdout, 16 << 20));
    let errors = tokio::spawn(read_stderr(stderr));
    let mut stdin = child.stdin.take();
    let fed = job
        .cancellable(async {
            while let Some(chunk) = rx.recv().await {
                // pg_restore stops once it has the table of contents.
                if let Some(w) = stdin.as_mut()
                    && w.write_all(&chunk).await.is_err()
                {
                    stdin = None;
                }
            }
            Ok(())
        })
        .await;
    drop(stdin);
    if let Err(e) = fed {
        let _ = child.kill().await;
        return Err(e);
    }
    let status = child.wait().await.map_err(|e| SourceError::Failed {
        what: "pg_restore --list".into(),
        detail: e.to_string(),
    })?;
    let list = listing.await.unwrap_or_default();
    if !status.success() {
        let stderr = errors.await.unwrap_or_default();
        return Err(SourceError::from(RdsError::DumpUnreadable {
            status: status.to_string(),
            stderr: stderr.trim().to_string(),
        })
        .into());
    }
    Ok(list)
}

/// One entry of a dump's table of contents: what it is (`TABLE`,
/// `TABLE DATA`, `INDEX`, ...), its schema (none for `-`), name and owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TocEntry {
    pub kind: String,
    pub schema: Option<String>,
    pub name: String,
    pub owner: Option<String>,
}

/// The entries of a `pg_restore --list` table of contents, in its order.
pub fn toc_entries(list: &str) -> Vec<TocEntry> {
    // Entry types of more than one word, longest first.
    const MULTI: [&str; 10] = [
        "MATERIALIZED VIEW DATA",
        "SEQUENCE OWNED BY",
        "MATERIALIZED VIEW",
        "FOREIGN TABLE",
        "FK CONSTRAINT",
        "SEQUENCE SET",
        "TABLE DATA",
        "DEFAULT ACL",
        "LARGE OBJECT",
        "TEXT SEARCH",
    ];
    let mut out = Vec::new();
    for line in list.lines().filter(|l| !l.starts_with(';')) {
        // `215; 1259 16500 TABLE public t1 postgres`: id; catalog oid, oid, kind, schema, name, owner.
        let Some((_, rest)) = line.split_once("; ") else {
            continue;
        };
        let mut parts = rest.splitn(3, ' ');
        let (Some(_catalog), Some(_oid), Some(entry)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (kind, tail) = match MULTI.iter().find(|k| entry.starts_with(&format!("{k} "))) {
            Some(k) => (k.to_string(), &entry[k.len() + 1..]),
            None => match entry.split_once(' ') {
                Some((k, tail)) => (k.to_string(), tail),
                None => continue,
            },
        };
        let Some((schema, named)) = tail.split_once(' ') else {
            continue;
        };
        let (name, owner) = match named.rsplit_once(' ') {
            Some((name, owner)) => (name, Some(owner.to_string())),
            None => (named, None),
        };
        out.push(TocEntry {
            kind,
            schema: (schema != "-").then(|| schema.to_string()),
            name: name.to_string(),
            owner,
        });
    }
    out
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

async fn read_stderr(stderr: tokio::process::ChildStderr) -> String {
    read_capped(stderr, STDERR_KEEP).await
}

/// Reads a child's output to the end, keeping at most `cap` bytes of it.
async fn read_capped(mut from: impl tokio::io::AsyncRead + Unpin, cap: usize) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = from.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        if buf.len() < cap {
            buf.extend_from_slice(&chunk[..n.min(cap - buf.len())]);
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Streams `pg_dump --format=custom` of the database into `tx`. On failure the
/// stream gets an error too, so the pipeline aborts the upload.
/// A cancellation kills pg_dump at once.
/// The table and row counts of a database, as a restore test checks them.
pub const COUNT_SQL: &str = "SELECT count(*) || '|' || coalesce(sum((xpath('/row/c/text()', \
     query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text::bigint), 0) \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'";

/// Tables and rows of a database (leaf tables; a partitioned table's rows
/// are its partitions').
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowCounts {
    pub tables: u64,
    pub rows: u64,
}

impl RowCounts {
    fn parse(line: &str) -> Option<RowCounts> {
        let (t, r) = line.trim().split_once('|')?;
        Some(RowCounts {
            tables: t.parse().ok()?,
            rows: r.parse().ok()?,
        })
    }
}

impl Db {
    /// Counts tables and rows now (a full read of every table).
    pub async fn row_counts(&self) -> Result<RowCounts, SourceError> {
        let out = self.query(COUNT_SQL).await?;
        RowCounts::parse(&out).ok_or_else(|| SourceError::Failed {
            what: format!("counting rows in {self:?}"),
            detail: format!("unexpected answer {out:?}"),
        })
    }
}

/// A psql session holding a read-only repeatable-read transaction whose
/// snapshot pg_dump imports: the rows it counts are exactly the dumped ones.
struct SnapshotSession {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    snapshot: String,
}

/// Why the counting session could not open or count (the dump goes on).
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("no pipes to psql")]
    NoPipes,
    #[error("psql did not export a snapshot within 30s")]
    Timeout,
    #[error("psql exited {0}")]
    Exited(&'static str),
    #[error("unexpected answer {0:?}")]
    Unexpected(String),
}

impl SnapshotSession {
    async fn open(db: &Db) -> Result<SnapshotSession, SessionError> {
        use tokio::io::AsyncBufReadExt;
        let mut child = db
            .command("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(SessionError::NoPipes);
        };
        let mut stdout = tokio::io::BufReader::new(stdout).lines();
        stdin
            .write_all(b"BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\nSELECT pg_export_snapshot();\n")
            .await?;
        let line = tokio::time::timeout(std::time::Duration::from_secs(30), stdout.next_line())
            .await
            .map_err(|_| SessionError::Timeout)??
            .ok_or(SessionError::Exited("before exporting a snapshot"))?;
        Ok(SnapshotSession {
            child,
            stdin,
            stdout,
            snapshot: line.trim().to_string(),
        })
    }

    async fn count(&mut self) -> Result<RowCounts, SessionError> {
        self.stdin
            .write_all(format!("{COUNT_SQL};\n").as_bytes())
            .await?;
        let line = self
            .stdout
            .next_line()
            .await?
            .ok_or(SessionError::Exited("while counting rows"))?;
        RowCounts::parse(&line).ok_or(SessionError::Unexpected(line))
    }

    async fn close(mut self) {
        let _ = self.stdin.write_all(b"COMMIT;\n").await;
        drop(self.stdin);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), self.child.wait()).await;
    }
}

/// What a dump wrote and the tables and rows it holds (when they could be
/// counted in the dump's own snapshot).
pub struct Dumped {
    pub bytes: u64,
    pub counts: Option<RowCounts>,
}

pub async fn dump(
    db: &Db,
    tx: mpsc::Sender<io::Result<Bytes>>,
    job: &Job,
) -> Result<Dumped, Error> {
    // pg_dump and the counting session share one snapshot; without one (an
    // old server, no permission) the dump goes on uncounted.
    let mut session = match SnapshotSession::open(db).await {
        Ok(s) => Some(s),
        Err(e) => {
            job.warn(format!(
                "could not open a snapshot to count rows in ({e}): the point has no row counts, and a restore test checks its tables only"
            ));
            None
        }
    };
    let snapshot = session.as_ref().map(|s| s.snapshot.clone());
    let dumping = dump_inner(db, &tx, snapshot.as_deref(), job);
    let counting = async {
        match session.as_mut() {
            Some(s) => s.count().await.map(Some),
            None => Ok(None),
        }
    };
    let (result, counted) = tokio::join!(dumping, counting);
    if let Some(s) = session {
        s.close().await;
    }
    if let Err(e) = &result {
        let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
    }
    let bytes = result?;
    let counts = counted.unwrap_or_else(|e| {
        job.warn(format!(
            "could not count the dumped rows ({e}): the point has no row counts"
        ));
        None
    });
    Ok(Dumped { bytes, counts })
}

async fn dump_inner(
    db: &Db,
    tx: &mpsc::Sender<io::Result<Bytes>>,
    snapshot: Option<&str>,
    job: &Job,
) -> Result<u64, Error> {
    let mut cmd = db.command("pg_dump");
    cmd.args(["--format=custom", "--no-password", "--compress=0"]);
    if let Some(id) = snapshot {
        cmd.arg(format!("--snapshot={id}"));
    }
    let mut child = cmd
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

/// Feeds a custom-format dump from `stream` to `pg_restore` into the database,
/// in one transaction: it all lands, or nothing changes (a failure, a reset
/// connection or a cancellation rolls it back). With `clean`, the relations the
/// dump holds are dropped first (`--clean --if-exists`), in the same transaction.
///
/// The last chunk is held back until the whole download has been checked, so
/// pg_restore cannot reach its end (and commit) on bytes that failed a hash.
pub async fn restore(
    db: &Db,
    stream: &mut PointStream,
    clean: bool,
    job: &Job,
) -> Result<(), Error> {
    let mut rx = stream.take();
    let mut cmd = db.command("pg_restore");
    cmd.args([
        "--no-password",
        "--no-owner",
        "--single-transaction",
        "--exit-on-error",
        "--dbname",
    ])
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
            "pg_restore was stopped: its transaction is rolled back, database {db:?} is as it was"
        ))
    };
    let mut write_error = None;
    let mut unverified = None;
    let fed = async {
        let mut held: Option<Bytes> = None;
        while let Some(chunk) = rx.recv().await {
            if let Some(prev) = held.replace(chunk)
                && let Err(e) = stdin.write_all(&prev).await
            {
                // pg_restore stopped reading: its stderr says why.
                write_error = Some(e);
                break;
            }
        }
        if write_error.is_none() {
            match stream.end().await {
                Ok(()) => {
                    if let Some(last) = held
                        && let Err(e) = stdin.write_all(&last).await
                    {
                        write_error = Some(e);
                    }
                }
                Err(e) => {
                    unverified = Some(e);
                    return None;
                }
            }
        }
        drop(stdin);
        Some(child.wait().await)
    };
    let waited = tokio::select! {
        status = fed => Some(status),
        _ = job.cancel_token().cancelled() => None,
    };
    let Some(Some(waited)) = waited else {
        let _ = child.kill().await;
        if let Some(e) = unverified {
            return Err(rolled_back(e, db));
        }
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
        _ => Err(
            Error::from(db.tool_failed("pg_restore", &format!("{status}: {stderr}")))
                .noted("it ran in one transaction: nothing was applied, the database is as it was"),
        ),
    }
}

/// The download failed its checks before pg_restore could commit.
fn rolled_back(e: Error, db: &Db) -> Error {
    e.noted(format!(
        "pg_restore was stopped before it committed: database {db:?} is as it was"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_of_contents_names_the_relations_a_dump_creates() {
        let list = "\
;
; Archive created at 2026-11-28 14:00:00 UTC
6; 2615 16499 SCHEMA - s2 postgres
219; 1259 16515 MATERIALIZED VIEW public mv postgres
215; 1259 16500 TABLE public t1 postgres
216; 1259 16507 VIEW public v1 postgres
218; 1259 16512 TABLE s2 Odd Name postgres
217; 1259 16511 SEQUENCE s2 seq postgres
3357; 0 16500 TABLE DATA public t1 postgres
3212; 2606 16506 CONSTRAINT public t1 t1_pkey postgres
3210; 1259 16519 INDEX public i1 postgres
";
        let names: Vec<String> = dump_relations(list)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            names,
            [
                "public.mv",
                "public.t1",
                "public.v1",
                "s2.Odd Name",
                "s2.seq"
            ]
        );
    }

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
        let err = Db::resolve(&missing, None).err();
        assert!(
            matches!(
                err.as_ref().and_then(SourceError::kind_error::<RdsError>),
                Some(RdsError::PasswordEnvUnset { var }) if var == "DRTOOL_TEST_UNSET_PW"
            ),
            "{err:?}"
        );
    }
}
