//! The streaming pipeline between a source and a store, in both directions.
//!
//! Upload: plaintext chunks -> sha256 -> zstd (multithreaded) -> optional age ->
//! sha256 of stored bytes -> parts -> multipart upload with a bounded number of
//! parts in flight. Download: the reverse, yielding plaintext chunks.
//!
//! Compression and encryption run on one blocking thread; the async side only
//! moves parts. Memory is bounded by `part_size * (parts_in_flight + 2)` plus
//! zstd's window buffers, whatever the payload size. Nothing touches local disk.
//! On any failure the multipart upload is aborted, so nothing is left visible.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::path::Path;
use std::rc::Rc;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ArchiveError;
use super::adapt::{self, Adapt, Window};
use super::digest::{PlainDigest, PlainSum};
use crate::store::{Keep, MultipartUpload, ObjectStore, StoreError};

/// Plaintext chunk size handed between the pipeline and its consumers.
const CHUNK: usize = 256 * 1024;

/// S3 takes at most this many parts in one multipart upload.
pub const MAX_PARTS: u32 = 10_000;
/// S3's largest part.
const MAX_PART: usize = 5 << 30;
/// Parts of one size before the size doubles.
const PARTS_PER_STEP: u32 = 1_000;

/// The size of part `n` (1-based) of a stream: the configured size for the
/// first thousand parts, doubling every thousand after, up to S3's 5 GiB. The
/// stream's length is not known in advance; this way a small one uses small
/// parts and a 5 TiB one still fits in 10 000 (with 8 MiB parts: up to 8 TiB).
pub fn part_size_for(base: usize, n: u32) -> usize {
    let step = (n.saturating_sub(1) / PARTS_PER_STEP).min(20);
    base.saturating_mul(1usize << step).min(MAX_PART)
}

/// The largest stream an upload with parts of `base` bytes can hold.
pub fn max_object_size(base: usize) -> u64 {
    (1..=MAX_PARTS).map(|n| part_size_for(base, n) as u64).sum()
}

fn too_large(base: usize) -> io::Error {
    io::Error::other(format!(
        "the stream is larger than {MAX_PARTS} parts can hold with {} MiB parts (at most {} GiB): raise defaults.part_size_mib",
        base >> 20,
        max_object_size(base) >> 30
    ))
}

/// Called with the running count of plaintext bytes.
pub type OnBytes = Arc<dyn Fn(u64) + Send + Sync>;

#[derive(Debug, Clone)]
pub struct WriteOptions {
    pub level: i32,
    /// Lower the level while compression is what the backup waits on (see
    /// [`super::adapt`]); `level` is then the highest it uses.
    pub adapt: bool,
    /// zstd workers; 0 means one per core.
    pub threads: u32,
    pub part_size: usize,
    pub parts_in_flight: usize,
    /// age X25519 recipients; empty means no encryption.
    pub recipients: Vec<String>,
    /// The payload ends with the sha256 of the rest (etcd snapshots): check it
    /// while streaming and fail the upload if it is wrong.
    pub trailing_sha256: bool,
}

/// Sizes and hashes of what went through the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSummary {
    pub plaintext_size: u64,
    pub plaintext_sha256: String,
    pub stored_size: u64,
    pub stored_sha256: String,
    /// The version of the object that was read (downloads only).
    pub version: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

/// Streams `input` into a new object at `key`. The object exists only if this
/// returns `Ok`; otherwise (a failure, or `cancel`) nothing was made visible
/// and any multipart upload has been aborted.
pub async fn upload(
    store: &dyn ObjectStore,
    key: &str,
    input: mpsc::Receiver<io::Result<Bytes>>,
    opts: &WriteOptions,
    on_bytes: OnBytes,
    cancel: &CancellationToken,
) -> Result<DataSummary, PipelineError> {
    let (part_tx, mut part_rx) = mpsc::channel::<Bytes>(1);
    let enc_opts = opts.clone();
    let enc_key = key.to_string();
    let encoder =
        tokio::task::spawn_blocking(move || encode(&enc_key, input, part_tx, &enc_opts, on_bytes));
    let encoded = async {
        encoder
            .await
            .map_err(|e| ArchiveError::Pipeline {
                key: key.to_string(),
                detail: format!("encoder thread failed: {e}"),
            })?
            .map_err(PipelineError::from)
    };
    write_parts(store, key, &mut part_rx, opts, cancel, encoded).await
}

/// Writes the parts arriving on `parts` as the object `key`, once `produced`
/// (whoever makes the parts, with its checks) has succeeded: a single PUT when
/// the stream is one part long, a multipart upload otherwise. On any failure
/// the upload is aborted and nothing is visible at `key`.
async fn write_parts<T>(
    store: &dyn ObjectStore,
    key: &str,
    parts: &mut mpsc::Receiver<Bytes>,
    opts: &WriteOptions,
    cancel: &CancellationToken,
    produced: impl std::future::Future<Output = Result<T, PipelineError>>,
) -> Result<T, PipelineError> {
    let cancelled = || {
        PipelineError::from(ArchiveError::Cancelled {
            key: key.to_string(),
        })
    };
    let mut first = Vec::new();
    while first.len() < 2 {
        let part = tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                parts.close();
                return Err(cancelled());
            }
            part = parts.recv() => part,
        };
        match part {
            Some(p) => first.push(p),
            None => break,
        }
    }
    if first.len() < 2 {
        // All of it fits in one part: one request, after every check passed.
        let value = produced.await?;
        let body = first.pop().unwrap_or_default();
        store.put(key, body, Keep::Retained).await?;
        return Ok(value);
    }
    let upload = match store.start_upload(key, Keep::Retained).await {
        Ok(u) => u,
        Err(e) => {
            parts.close();
            return Err(e.into());
        }
    };
    let sent = send_parts(upload.as_ref(), key, first, parts, opts, cancel).await;
    // Closing our end stops the producer at its next part.
    parts.close();
    if let Err(e) = sent {
        // Abort now rather than after the producer: its source may be slow to
        // notice, and nothing must stay visible meanwhile.
        return abort(upload, e).await;
    }
    let value = match produced.await {
        Ok(v) => v,
        Err(e) => return abort(upload, e).await,
    };
    // A failed completion leaves the upload open: abort it, or its parts stay.
    if let Err(e) = upload.complete().await {
        return abort(upload, e.into()).await;
    }
    Ok(value)
}

/// Uploads parts as they arrive until the channel closes, a part fails or
/// `cancel` fires: at most `parts_in_flight` at a time and, once parts have
/// grown, no more bytes in flight than that many parts of the configured size
/// (but always one).
async fn send_parts(
    upload: &dyn MultipartUpload,
    key: &str,
    first: Vec<Bytes>,
    parts: &mut mpsc::Receiver<Bytes>,
    opts: &WriteOptions,
    cancel: &CancellationToken,
) -> Result<(), PipelineError> {
    let max_in_flight = opts.parts_in_flight.max(1);
    let budget = opts.part_size.saturating_mul(max_in_flight);
    let mut in_flight = FuturesUnordered::new();
    let mut bytes = 0usize;
    let mut number = 0u32;
    let put = |number: u32, body: Bytes| {
        let len = body.len();
        async move { upload.put_part(number, body).await.map(|()| len) }
    };
    for body in first {
        number += 1;
        bytes += body.len();
        in_flight.push(put(number, body));
    }
    loop {
        let room = in_flight.is_empty() || (in_flight.len() < max_in_flight && bytes < budget);
        tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                return Err(ArchiveError::Cancelled { key: key.to_string() }.into());
            }
            part = parts.recv(), if room => match part {
                Some(body) => {
                    number += 1;
                    bytes += body.len();
                    in_flight.push(put(number, body));
                }
                None => break,
            },
            Some(done) = in_flight.next(), if !in_flight.is_empty() => bytes -= done?,
        }
    }
    while let Some(done) = in_flight.next().await {
        done?;
    }
    Ok(())
}

/// Copies an object's stored bytes unchanged to another store, checking them
/// against `expected_sha256` before the copy is completed. On a mismatch or any
/// failure the destination upload is aborted.
pub async fn copy_object(
    (from, from_key): (&dyn ObjectStore, &str),
    (to, to_key): (&dyn ObjectStore, &str),
    opts: &WriteOptions,
    expected_sha256: &str,
    on_bytes: OnBytes,
    cancel: &CancellationToken,
) -> Result<u64, PipelineError> {
    let mut reader = from
        .open(from_key, None)
        .await
        .map_err(|e| missing(from_key, e))?
        .reader;
    let (part_tx, mut part_rx) = mpsc::channel::<Bytes>(1);
    let base = opts.part_size;
    let key = from_key.to_string();
    let reading = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut sent = 0u32;
        loop {
            if sent == MAX_PARTS {
                return Err(ArchiveError::Pipeline {
                    key: key.clone(),
                    detail: too_large(base).to_string(),
                });
            }
            let part_size = part_size_for(base, sent + 1);
            let mut buf = Vec::with_capacity(part_size);
            while buf.len() < part_size {
                let n = (&mut reader)
                    .take((part_size - buf.len()) as u64)
                    .read_to_end(&mut buf)
                    .await
                    .map_err(|e| ArchiveError::Pipeline {
                        key: key.clone(),
                        detail: format!("reading the source copy: {e}"),
                    })?;
                if n == 0 {
                    break;
                }
            }
            let last = buf.len() < part_size;
            if buf.is_empty() && sent > 0 {
                break;
            }
            hasher.update(&buf);
            size += buf.len() as u64;
            on_bytes(size);
            sent += 1;
            if part_tx.send(Bytes::from(buf)).await.is_err() || last {
                break;
            }
        }
        Ok::<_, ArchiveError>((size, hex::encode(hasher.finalize())))
    });
    let read = async {
        let (size, sha) = reading.await.map_err(|e| ArchiveError::Pipeline {
            key: from_key.to_string(),
            detail: format!("copy reader failed: {e}"),
        })??;
        if sha != expected_sha256 {
            return Err(ArchiveError::Mismatch {
                key: from_key.to_string(),
                what: "stored sha256",
                expected: expected_sha256.to_string(),
                found: sha,
            }
            .into());
        }
        Ok(size)
    };
    write_parts(to, to_key, &mut part_rx, opts, cancel, read).await
}

/// Size and sha256 of an object's stored bytes, streamed.
pub async fn hash_object(
    store: &dyn ObjectStore,
    key: &str,
    on_bytes: OnBytes,
) -> Result<(u64, String), PipelineError> {
    use tokio::io::AsyncReadExt;
    let mut reader = store
        .open(key, None)
        .await
        .map_err(|e| missing(key, e))?
        .reader;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(|e| ArchiveError::Pipeline {
                key: key.to_string(),
                detail: format!("reading: {e}"),
            })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
        on_bytes(size);
    }
    Ok((size, hex::encode(hasher.finalize())))
}

async fn abort<T>(
    upload: Box<dyn MultipartUpload>,
    cause: PipelineError,
) -> Result<T, PipelineError> {
    if let Err(e) = upload.abort().await {
        tracing::warn!("could not abort multipart upload after failure: {e}");
    }
    Err(cause)
}

/// Collects stored bytes into parts (growing, see [`part_size_for`]) and
/// hashes them.
struct PartSink {
    buf: Vec<u8>,
    /// The configured part size.
    base: usize,
    tx: mpsc::Sender<Bytes>,
    hasher: Sha256,
    size: u64,
    sent: u32,
    /// Nanoseconds spent waiting for the upload to take a part.
    waited: Arc<AtomicU64>,
}

impl PartSink {
    fn part_size(&self) -> usize {
        part_size_for(self.base, self.sent + 1)
    }

    fn send(&mut self) -> io::Result<()> {
        if self.sent == MAX_PARTS {
            return Err(too_large(self.base));
        }
        let next = part_size_for(self.base, self.sent + 2);
        let part = std::mem::replace(&mut self.buf, Vec::with_capacity(next));
        self.sent += 1;
        let started = Instant::now();
        let sent = self
            .tx
            .blocking_send(Bytes::from(part))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "upload stopped"));
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.waited.fetch_add(nanos, Ordering::Relaxed);
        sent
    }

    fn finish(mut self) -> io::Result<(u64, String)> {
        // S3 needs at least one part, even for an empty payload.
        if !self.buf.is_empty() || self.sent == 0 {
            self.send()?;
        }
        Ok((self.size, hex::encode(self.hasher.finalize())))
    }
}

impl Write for PartSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.hasher.update(data);
        self.size += data.len() as u64;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= self.part_size() {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What zstd writes into: the part sink, possibly behind age.
enum Sealed {
    Plain(PartSink),
    Age(age::stream::StreamWriter<PartSink>),
}

impl Write for Sealed {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Sealed::Plain(w) => w.write(data),
            Sealed::Age(w) => w.write(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sealed::Plain(w) => w.flush(),
            Sealed::Age(w) => w.flush(),
        }
    }
}

fn zstd_threads(requested: u32) -> u32 {
    if requested > 0 {
        requested
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
    }
}

fn encode(
    key: &str,
    input: mpsc::Receiver<io::Result<Bytes>>,
    part_tx: mpsc::Sender<Bytes>,
    opts: &WriteOptions,
    on_bytes: OnBytes,
) -> Result<DataSummary, ArchiveError> {
    let (stored_size, stored_sha256, plain) = encode_stream(input, part_tx, opts, on_bytes)
        .map_err(|e| ArchiveError::Pipeline {
            key: key.to_string(),
            detail: e.to_string(),
        })?;
    if opts.trailing_sha256 {
        check_trailer(key, &plain)?;
    }
    Ok(DataSummary {
        plaintext_size: plain.size,
        plaintext_sha256: plain.sha256,
        stored_size,
        stored_sha256,
        version: None,
    })
}

fn check_trailer(key: &str, plain: &PlainSum) -> Result<(), ArchiveError> {
    plain.trailer.clone().map_err(|m| ArchiveError::Mismatch {
        key: key.to_string(),
        what: "payload's trailing sha256 (the one its kind writes at its end)",
        expected: m.recorded,
        found: m.computed,
    })
}

fn encode_stream(
    mut input: mpsc::Receiver<io::Result<Bytes>>,
    part_tx: mpsc::Sender<Bytes>,
    opts: &WriteOptions,
    on_bytes: OnBytes,
) -> io::Result<(u64, String, PlainSum)> {
    let waited_out = Arc::new(AtomicU64::new(0));
    let sink = PartSink {
        buf: Vec::with_capacity(opts.part_size),
        base: opts.part_size,
        tx: part_tx,
        hasher: Sha256::new(),
        size: 0,
        sent: 0,
        waited: waited_out.clone(),
    };
    let sealed = if opts.recipients.is_empty() {
        Sealed::Plain(sink)
    } else {
        let recipients = parse_recipients(&opts.recipients)?;
        let encryptor =
            age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                .map_err(|e| io::Error::other(format!("age: {e}")))?;
        Sealed::Age(encryptor.wrap_output(sink)?)
    };
    let mut z = zstd::stream::write::Encoder::new(sealed, opts.level)?;
    z.multithread(zstd_threads(opts.threads))?;
    z.include_checksum(true)?;
    let mut plain = PlainDigest::default();
    let mut adapt = opts.adapt.then(|| Adapting::new(opts.level, waited_out));
    while let Some(chunk) = input.blocking_recv() {
        let chunk = chunk?;
        plain.update(&chunk);
        let handed = (
            Instant::now(),
            adapt.as_ref().map_or(0, Adapting::waited_out),
        );
        z.write_all(&chunk)?;
        if let Some(a) = adapt.as_mut() {
            // zstd hands its output to the upload inside the write: that
            // wait is the upload's, not compression's.
            let upload = Duration::from_nanos(a.waited_out().saturating_sub(handed.1));
            a.compressing += handed.0.elapsed().saturating_sub(upload);
        }
        on_bytes(plain.size());
        if let Some(level) = adapt.as_mut().and_then(|a| a.after(chunk.len())) {
            z.set_parameter(zstd::stream::raw::CParameter::CompressionLevel(level))?;
        }
    }
    if let Some(a) = &adapt {
        tracing::debug!(
            configured = opts.level,
            lowest = a.adapt.lowest,
            "compression level adapted"
        );
    }
    let sink = match z.finish()? {
        Sealed::Plain(s) => s,
        Sealed::Age(w) => w.finish()?,
    };
    let (stored_size, stored_sha256) = sink.finish()?;
    Ok((stored_size, stored_sha256, plain.finish()))
}

/// The encoder's measure of each window of input, for [`Adapt`].
struct Adapting {
    adapt: Adapt,
    started: Instant,
    bytes: u64,
    compressing: Duration,
    waited_out: Arc<AtomicU64>,
    out_before: u64,
}

impl Adapting {
    fn new(level: i32, waited_out: Arc<AtomicU64>) -> Adapting {
        Adapting {
            adapt: Adapt::new(level),
            started: Instant::now(),
            bytes: 0,
            compressing: Duration::ZERO,
            waited_out,
            out_before: 0,
        }
    }

    fn waited_out(&self) -> u64 {
        self.waited_out.load(Ordering::Relaxed)
    }

    /// After `n` more bytes: the new level, at the end of a window that
    /// asks for one.
    fn after(&mut self, n: usize) -> Option<i32> {
        self.bytes += n as u64;
        if self.bytes < adapt::WINDOW_BYTES {
            return None;
        }
        let out = self.waited_out.load(Ordering::Relaxed);
        let window = Window {
            wall: self.started.elapsed(),
            compressing: self.compressing,
            waited_out: Duration::from_nanos(out.saturating_sub(self.out_before)),
        };
        self.started = Instant::now();
        self.bytes = 0;
        self.compressing = Duration::ZERO;
        self.out_before = out;
        let next = self.adapt.next(window);
        tracing::trace!(?window, level = self.adapt.level(), "compression window");
        next
    }
}

fn parse_recipients(list: &[String]) -> io::Result<Vec<age::x25519::Recipient>> {
    list.iter()
        .map(|r| {
            age::x25519::Recipient::from_str(r)
                .map_err(|e| io::Error::other(format!("invalid age recipient {r:?}: {e}")))
        })
        .collect()
}

/// Encrypts a small object whole (a stream segment) to age `recipients`.
pub fn encrypt_small(recipients: &[String], plain: &[u8]) -> io::Result<Vec<u8>> {
    let recipients = parse_recipients(recipients)?;
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| io::Error::other(format!("age: {e}")))?;
    let mut out = Vec::with_capacity(plain.len() + 256);
    let mut w = encryptor.wrap_output(&mut out)?;
    w.write_all(plain)?;
    w.finish()?;
    Ok(out)
}

/// Whether stored bytes are age-encrypted (they start with age's header).
pub fn is_age(stored: &[u8]) -> bool {
    stored.starts_with(b"age-encryption.org/")
}

/// X25519 identities used to decrypt age-encrypted points.
pub struct Identities {
    identities: Vec<age::x25519::Identity>,
}

impl Identities {
    /// Reads an age identity file (`age-keygen` output: `AGE-SECRET-KEY-1...`
    /// lines, `#` comments).
    pub fn from_file(path: &Path) -> Result<Identities, ArchiveError> {
        let bad = |detail: String| ArchiveError::Identity {
            path: path.display().to_string(),
            detail,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let mut identities = Vec::new();
        for (no, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let id = age::x25519::Identity::from_str(line).map_err(|_| {
                bad(format!(
                    "line {}: not an age X25519 identity (expected AGE-SECRET-KEY-1..., as written by age-keygen)",
                    no + 1
                ))
            })?;
            identities.push(id);
        }
        if identities.is_empty() {
            return Err(bad("the file holds no age identity".into()));
        }
        Ok(Identities { identities })
    }

    /// Decrypts a small object whole (a stream segment), at most `limit`
    /// bytes of plaintext.
    pub fn decrypt_small(
        &self,
        key: &str,
        stored: &[u8],
        limit: u64,
    ) -> Result<Vec<u8>, ArchiveError> {
        let decrypt_err = |detail: String| ArchiveError::Decrypt {
            key: key.to_string(),
            detail,
        };
        let decryptor = age::Decryptor::new(stored).map_err(|e| decrypt_err(e.to_string()))?;
        let reader = decryptor
            .decrypt(self.identities.iter().map(|i| i as &dyn age::Identity))
            .map_err(|e| decrypt_err(e.to_string()))?;
        let mut out = Vec::new();
        reader
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|e| decrypt_err(e.to_string()))?;
        Ok(out)
    }
}

/// Counts and hashes what is read through it; shared so the count survives the
/// reader being moved into the decryptor and decompressor.
#[derive(Default)]
struct ReadTally {
    hasher: Sha256,
    size: u64,
    /// Reading the stored bytes failed (the store, not the format).
    failed: Option<String>,
}

struct TallyReader<R> {
    inner: R,
    tally: Rc<RefCell<ReadTally>>,
}

impl<R: Read> Read for TallyReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                self.tally.borrow_mut().failed = Some(e.to_string());
                return Err(e);
            }
        };
        let mut t = self.tally.borrow_mut();
        t.hasher.update(&buf[..n]);
        t.size += n as u64;
        Ok(n)
    }
}

/// What a download needs to know about the stored object.
#[derive(Clone)]
pub struct ReadRequest {
    pub key: String,
    pub encrypted: bool,
    /// Check the payload's trailing sha256 (etcd snapshots).
    pub trailing_sha256: bool,
    pub identities: Option<Arc<Identities>>,
    /// Read only this version of the object (see [`crate::store::Opened`]).
    pub pin: Option<String>,
}

/// The two ends of a download: plaintext chunks, and the task that returns
/// the sizes and hashes once the whole object has been read, or the first error.
pub type Download = (
    mpsc::Receiver<Bytes>,
    JoinHandle<Result<DataSummary, PipelineError>>,
);

/// Opens the object at `key` (pinned to `req.pin`, when set) and streams its
/// plaintext. The object is opened before this returns, so a missing or
/// replaced object fails here, before a consumer sees a byte. Compare the
/// summary with the manifest before trusting data.
pub async fn download(
    store: Arc<dyn ObjectStore>,
    req: ReadRequest,
    on_bytes: OnBytes,
) -> Result<Download, PipelineError> {
    if req.encrypted && req.identities.is_none() {
        return Err(ArchiveError::NeedsIdentity { key: req.key }.into());
    }
    let opened = store
        .open(&req.key, req.pin.as_deref())
        .await
        .map_err(|e| missing(&req.key, e))?;
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let handle = tokio::spawn(async move {
        let version = opened.version;
        let bridge = tokio_util::io::SyncIoBridge::new(opened.reader);
        let key = req.key.clone();
        let summary = tokio::task::spawn_blocking(move || decode(bridge, req, tx, on_bytes))
            .await
            .map_err(|e| ArchiveError::Pipeline {
                key,
                detail: format!("decoder thread failed: {e}"),
            })??;
        Ok(DataSummary { version, ..summary })
    });
    Ok((rx, handle))
}

fn decode(
    stored: impl Read,
    req: ReadRequest,
    tx: mpsc::Sender<Bytes>,
    on_bytes: OnBytes,
) -> Result<DataSummary, PipelineError> {
    let key = req.key.as_str();
    let tally = Rc::new(RefCell::new(ReadTally::default()));
    let counted = TallyReader {
        inner: stored,
        tally: tally.clone(),
    };
    // A read of the stored bytes that broke (a reset connection) is the
    // store's failure, not damage in the point.
    let read_failed = tally.clone();
    let decode_err = |e: io::Error| match read_failed.borrow().failed.clone() {
        Some(detail) => ArchiveError::Read {
            key: key.to_string(),
            detail,
        },
        None => ArchiveError::Decode {
            key: key.to_string(),
            detail: e.to_string(),
        },
    };
    let opened: Box<dyn Read> = match &req.identities {
        Some(ids) if req.encrypted => {
            let decrypt_err = |e: age::DecryptError| ArchiveError::Decrypt {
                key: key.to_string(),
                detail: e.to_string(),
            };
            let decryptor = age::Decryptor::new(counted).map_err(decrypt_err)?;
            let reader = decryptor
                .decrypt(ids.identities.iter().map(|i| i as &dyn age::Identity))
                .map_err(decrypt_err)?;
            Box::new(reader)
        }
        _ => Box::new(counted),
    };
    let mut z = zstd::stream::read::Decoder::new(opened).map_err(decode_err)?;
    let mut plain = PlainDigest::default();
    loop {
        let mut buf = vec![0u8; CHUNK];
        let n = read_full(&mut z, &mut buf).map_err(decode_err)?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        plain.update(&buf);
        on_bytes(plain.size());
        if tx.blocking_send(Bytes::from(buf)).is_err() {
            return Err(ArchiveError::ConsumerStopped {
                key: key.to_string(),
            }
            .into());
        }
    }
    // Hash whatever trails the last frame too, so the stored hash covers it all.
    let mut rest = z.finish();
    io::copy(&mut rest, &mut io::sink()).map_err(decode_err)?;
    drop(rest);
    let plain = plain.finish();
    if req.trailing_sha256 {
        check_trailer(key, &plain)?;
    }
    let t = tally.borrow();
    Ok(DataSummary {
        plaintext_size: plain.size,
        plaintext_sha256: plain.sha256,
        stored_size: t.size,
        stored_sha256: hex::encode(t.hasher.clone().finalize()),
        version: None,
    })
}

/// A point's data object that is not there is damage to the point, not a
/// wrong argument: its manifest says it exists.
fn missing(key: &str, e: StoreError) -> PipelineError {
    match e {
        StoreError::NotFound { store, .. } => ArchiveError::Missing {
            key: key.to_string(),
            store,
        }
        .into(),
        other => other.into(),
    }
}

/// Fills `buf` as far as the reader allows; returns 0 only at the end.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Compares what was read with what the manifest recorded.
pub fn check_summary(
    key: &str,
    found: &DataSummary,
    expected: &DataSummary,
    plaintext_checked: bool,
) -> Result<(), ArchiveError> {
    let mismatch = |what: &'static str, e: String, f: String| ArchiveError::Mismatch {
        key: key.to_string(),
        what,
        expected: e,
        found: f,
    };
    if found.stored_sha256 != expected.stored_sha256 {
        return Err(mismatch(
            "stored sha256",
            expected.stored_sha256.clone(),
            found.stored_sha256.clone(),
        ));
    }
    if found.stored_size != expected.stored_size {
        return Err(mismatch(
            "stored size",
            expected.stored_size.to_string(),
            found.stored_size.to_string(),
        ));
    }
    if plaintext_checked {
        if found.plaintext_sha256 != expected.plaintext_sha256 {
            return Err(mismatch(
                "plaintext sha256",
                expected.plaintext_sha256.clone(),
                found.plaintext_sha256.clone(),
            ));
        }
        if found.plaintext_size != expected.plaintext_size {
            return Err(mismatch(
                "plaintext size",
                expected.plaintext_size.to_string(),
                found.plaintext_size.to_string(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FsStore;

    fn opts(recipients: Vec<String>) -> WriteOptions {
        WriteOptions {
            level: 3,
            adapt: true,
            threads: 2,
            part_size: 5 * 1024 * 1024,
            parts_in_flight: 2,
            recipients,
            trailing_sha256: false,
        }
    }

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    async fn roundtrip(
        data: Vec<u8>,
        recipients: Vec<String>,
        ids: Option<Arc<Identities>>,
    ) -> Result<(DataSummary, DataSummary, Vec<u8>), PipelineError> {
        let dir = tempfile::tempdir().map_err(|e| ArchiveError::Pipeline {
            key: "tmp".into(),
            detail: e.to_string(),
        })?;
        let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path().to_path_buf()));
        let (tx, rx) = mpsc::channel(2);
        let feeder = tokio::spawn(async move {
            for chunk in data.chunks(100_000) {
                let _ = tx.send(Ok(Bytes::copy_from_slice(chunk))).await;
            }
        });
        let encrypted = !recipients.is_empty();
        let written = upload(
            store.as_ref(),
            "p/data",
            rx,
            &opts(recipients),
            Arc::new(|_| {}),
            &CancellationToken::new(),
        )
        .await?;
        let _ = feeder.await;
        let req = ReadRequest {
            key: "p/data".into(),
            encrypted,
            trailing_sha256: false,
            identities: ids,
            pin: None,
        };
        let (mut rx, handle) = download(store, req, Arc::new(|_| {})).await?;
        let mut back = Vec::new();
        while let Some(c) = rx.recv().await {
            back.extend_from_slice(&c);
        }
        let read = handle.await.map_err(|e| ArchiveError::Pipeline {
            key: "join".into(),
            detail: e.to_string(),
        })??;
        assert!(
            read.version.is_some(),
            "a download says which version it read"
        );
        let read = DataSummary {
            version: None,
            ..read
        };
        Ok((written, read, back))
    }

    #[tokio::test]
    async fn plain_roundtrip_matches_hashes() -> Result<(), PipelineError> {
        let data = payload(12 * 1024 * 1024 + 17);
        let (written, read, back) = roundtrip(data.clone(), vec![], None).await?;
        assert_eq!(back, data);
        assert_eq!(written, read);
        assert_eq!(written.plaintext_sha256, hex::encode(Sha256::digest(&data)));
        assert!(written.stored_size < written.plaintext_size);
        Ok(())
    }

    #[test]
    fn parts_grow_so_five_tib_fits_in_ten_thousand() {
        let mib = 1usize << 20;
        assert_eq!(part_size_for(8 * mib, 1), 8 * mib);
        assert_eq!(part_size_for(8 * mib, 1000), 8 * mib);
        assert_eq!(part_size_for(8 * mib, 1001), 16 * mib);
        assert_eq!(part_size_for(8 * mib, MAX_PARTS), 4096 * mib);
        assert_eq!(
            part_size_for(512 * mib, MAX_PARTS),
            MAX_PART,
            "capped at 5 GiB"
        );
        let tib = 1u64 << 40;
        assert!(max_object_size(8 * mib) >= 5 * tib);
        assert!(max_object_size(6 * mib) >= 5 * tib);
        // The smallest part S3 allows cannot quite reach 5 TiB: the upload says so.
        assert!(max_object_size(5 * mib) < 5 * tib);
        assert!(
            too_large(5 * mib)
                .to_string()
                .contains("raise defaults.part_size_mib")
        );
    }

    #[tokio::test]
    async fn empty_payload_roundtrips() -> Result<(), PipelineError> {
        let (written, read, back) = roundtrip(vec![], vec![], None).await?;
        assert!(back.is_empty());
        assert_eq!(written, read);
        Ok(())
    }

    #[tokio::test]
    async fn encrypted_roundtrip_needs_the_identity() -> Result<(), PipelineError> {
        let key = age::x25519::Identity::generate();
        let recipient = key.to_public().to_string();
        let data = payload(300_000);
        let ids = Arc::new(Identities {
            identities: vec![key],
        });
        let (written, read, back) =
            roundtrip(data.clone(), vec![recipient.clone()], Some(ids)).await?;
        assert_eq!(back, data);
        assert_eq!(written, read);
        let missing = roundtrip(data, vec![recipient], None).await;
        assert!(matches!(
            missing,
            Err(PipelineError::Archive(ArchiveError::NeedsIdentity { .. }))
        ));
        Ok(())
    }

    #[tokio::test]
    async fn wrong_trailing_sha256_fails_the_upload() -> Result<(), PipelineError> {
        let dir = tempfile::tempdir().map_err(|e| ArchiveError::Pipeline {
            key: "tmp".into(),
            detail: e.to_string(),
        })?;
        let store = FsStore::new(dir.path().to_path_buf());
        let body = payload(100_000);
        let mut good = body.clone();
        good.extend_from_slice(&Sha256::digest(&body));
        let mut bad = good.clone();
        bad[500] ^= 1;
        let trailing = WriteOptions {
            trailing_sha256: true,
            ..opts(vec![])
        };
        for (data, ok) in [(good, true), (bad, false)] {
            let (tx, rx) = mpsc::channel(2);
            tokio::spawn(async move {
                let _ = tx.send(Ok(Bytes::from(data))).await;
            });
            let r = upload(
                &store,
                "p/snap",
                rx,
                &trailing,
                Arc::new(|_| {}),
                &CancellationToken::new(),
            )
            .await;
            assert_eq!(r.is_ok(), ok);
            if !ok {
                assert!(matches!(
                    r,
                    Err(PipelineError::Archive(ArchiveError::Mismatch { .. }))
                ));
            }
        }
        assert!(store.unfinished("").await?.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn failing_source_leaves_nothing() -> Result<(), PipelineError> {
        let dir = tempfile::tempdir().map_err(|e| ArchiveError::Pipeline {
            key: "tmp".into(),
            detail: e.to_string(),
        })?;
        let store = FsStore::new(dir.path().to_path_buf());
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(async move {
            let _ = tx.send(Ok(Bytes::from(payload(6 * 1024 * 1024)))).await;
            let _ = tx.send(Err(io::Error::other("source broke"))).await;
        });
        let r = upload(
            &store,
            "p/data",
            rx,
            &opts(vec![]),
            Arc::new(|_| {}),
            &CancellationToken::new(),
        )
        .await;
        assert!(r.is_err());
        assert!(store.list("").await?.is_empty());
        assert!(store.unfinished("").await?.is_empty());
        Ok(())
    }

    /// Stored bytes that break off after `ok` bytes, like a reset connection.
    struct BreaksOff {
        data: Vec<u8>,
        ok: usize,
        at: usize,
    }

    impl Read for BreaksOff {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.at >= self.ok {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "connection reset by peer",
                ));
            }
            let n = buf
                .len()
                .min(self.ok - self.at)
                .min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[tokio::test]
    async fn a_broken_read_is_the_store_and_a_missing_object_is_damage() -> Result<(), PipelineError>
    {
        let stored =
            zstd::encode_all(&payload(2_000_000)[..], 3).map_err(|e| ArchiveError::Pipeline {
                key: "zstd".into(),
                detail: e.to_string(),
            })?;
        let req = ReadRequest {
            key: "p/data".into(),
            encrypted: false,
            trailing_sha256: false,
            identities: None,
            pin: None,
        };
        let (tx, mut rx) = mpsc::channel(64);
        let reader = BreaksOff {
            ok: stored.len() / 2,
            data: stored,
            at: 0,
        };
        let decoding =
            tokio::task::spawn_blocking(move || decode(reader, req, tx, Arc::new(|_| {})));
        while rx.recv().await.is_some() {}
        let r = decoding.await.map_err(|e| ArchiveError::Pipeline {
            key: "join".into(),
            detail: e.to_string(),
        })?;
        assert!(
            matches!(r, Err(PipelineError::Archive(ArchiveError::Read { .. }))),
            "{r:?}"
        );

        let dir = tempfile::tempdir().map_err(|e| ArchiveError::Pipeline {
            key: "tmp".into(),
            detail: e.to_string(),
        })?;
        let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path().to_path_buf()));
        let req = ReadRequest {
            key: "points/t/p/data.zst".into(),
            encrypted: false,
            trailing_sha256: false,
            identities: None,
            pin: None,
        };
        let r = download(store, req, Arc::new(|_| {})).await.map(|_| ());
        assert!(
            matches!(r, Err(PipelineError::Archive(ArchiveError::Missing { .. }))),
            "{r:?}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn cancelling_aborts_the_upload() -> Result<(), PipelineError> {
        let dir = tempfile::tempdir().map_err(|e| ArchiveError::Pipeline {
            key: "tmp".into(),
            detail: e.to_string(),
        })?;
        let store = FsStore::new(dir.path().to_path_buf());
        let (tx, rx) = mpsc::channel(2);
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            // Parts flow, then the run is cancelled while the source still sends.
            for i in 0..1000 {
                if tx
                    .send(Ok(Bytes::from(payload(1024 * 1024))))
                    .await
                    .is_err()
                {
                    break;
                }
                if i == 12 {
                    stop.cancel();
                }
            }
        });
        let r = upload(
            &store,
            "p/data",
            rx,
            &opts(vec![]),
            Arc::new(|_| {}),
            &cancel,
        )
        .await;
        assert!(
            matches!(
                r,
                Err(PipelineError::Archive(ArchiveError::Cancelled { .. }))
            ),
            "{r:?}"
        );
        assert!(store.list("").await?.is_empty());
        assert!(store.unfinished("").await?.is_empty());
        Ok(())
    }
}
