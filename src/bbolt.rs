//! A read-only reader of bbolt files (etcd's backend, and so its snapshot
//! files), written from the file format: two meta pages, then branch, leaf
//! and overflow pages of B+trees whose leaves hold keys, values and nested
//! buckets. Pages are read with positioned reads as the walk reaches them;
//! nothing holds the file in memory. Every offset, size and page id is
//! checked against the page and the file before it is used, so a damaged
//! or hostile file is an error naming where it went wrong, never a panic
//! or a read outside the file.
//!
//! The layout (little-endian, as bbolt writes it on amd64 and arm64):
//! - page header, 16 bytes: id u64, flags u16, count u16, overflow u32; a
//!   page with `overflow` n spans n + 1 pages;
//! - meta page (pages 0 and 1; the valid one with the higher txid counts):
//!   magic u32 0xED0CDAED, version u32 2, page size u32, flags u32, root
//!   bucket {root u64, sequence u64}, freelist u64, high water pgid u64,
//!   txid u64, FNV-1a 64 checksum of the 56 bytes before it;
//! - branch element, 16 bytes: pos u32, ksize u32, child pgid u64 (the key
//!   at the element's address plus pos);
//! - leaf element, 16 bytes: flags u32 (1: the value is a bucket), pos u32,
//!   ksize u32, vsize u32 (key then value at the element's address plus pos);
//! - a bucket value: {root u64, sequence u64}; root 0 means an inline
//!   bucket, whose one leaf page follows in the value itself.
//!
//! A freelist is never read (etcd snapshots store none).
//!
//! [`PageScan`] reads a file as it streams past (a backup) and keeps just
//! enough of it to walk to a large bucket's last key afterwards (and to read
//! small buckets whole).

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const HEADER: usize = 16;
const ELEMENT: usize = 16;
const BRANCH: u16 = 0x01;
const LEAF: u16 = 0x02;
const META: u16 = 0x04;
const BUCKET_LEAF: u32 = 0x01;
/// The deepest tree walked: bbolt's are a handful of levels; a deeper one
/// is a cycle in a damaged file.
const MAX_DEPTH: usize = 64;
/// A page larger than this is not one bbolt writes (it allows up to 64 KiB
/// page sizes; an overflow run can be long, but not longer than the file).
const MAX_PAGE_SIZE: u32 = 1 << 16;
const MIN_PAGE_SIZE: u32 = 512;

/// A malformed or unreadable file, with where it went wrong.
#[derive(Debug, thiserror::Error)]
pub enum BoltError {
    #[error("cannot read {path}: {detail}")]
    Io { path: PathBuf, detail: String },
    #[error("{path} is not a bbolt file drtool can read: {at}: {detail}")]
    Malformed {
        path: PathBuf,
        at: String,
        detail: String,
    },
}

/// The meta page in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub page_size: u32,
    pub root: u64,
    pub freelist: u64,
    /// The first page id past the data.
    pub high_water: u64,
    pub txid: u64,
}

/// An open bbolt file.
#[derive(Debug)]
pub struct Db {
    source: Source,
    path: PathBuf,
    len: u64,
    meta: Meta,
}

/// A bucket: a tree rooted at a page, or inline (its one leaf page held in
/// its parent's value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bucket {
    Root(u64),
    Inline(Vec<u8>),
}

/// One leaf entry: a key and its value, or a nested bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub bucket: bool,
}

/// A page's bytes (its overflow pages included) and the id it was read as.
struct Page {
    id: u64,
    bytes: Vec<u8>,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// FNV-1a, 64 bits: bbolt's meta checksum.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The meta of a meta page's bytes (from its header on), or why not.
fn read_meta(page: &[u8]) -> Result<Meta, String> {
    let short = || "the meta page is cut short".to_string();
    let flags = u16_at(page, 8).ok_or_else(short)?;
    if flags & META == 0 {
        return Err(format!("page flags {flags:#x} are not a meta page's"));
    }
    let m = page.get(HEADER..HEADER + 64).ok_or_else(short)?;
    let magic = u32_at(m, 0).ok_or_else(short)?;
    if magic != MAGIC {
        return Err(format!("magic {magic:#010x}, not bbolt's {MAGIC:#010x}"));
    }
    let version = u32_at(m, 4).ok_or_else(short)?;
    if version != VERSION {
        return Err(format!("format version {version}, not {VERSION}"));
    }
    let stored = u64_at(m, 56).ok_or_else(short)?;
    if fnv1a(&m[..56]) != stored {
        return Err("its checksum does not match its contents".into());
    }
    let page_size = u32_at(m, 8).ok_or_else(short)?;
    if !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(format!("page size {page_size} is not one bbolt uses"));
    }
    Ok(Meta {
        page_size,
        root: u64_at(m, 16).ok_or_else(short)?,
        freelist: u64_at(m, 32).ok_or_else(short)?,
        high_water: u64_at(m, 40).ok_or_else(short)?,
        txid: u64_at(m, 48).ok_or_else(short)?,
    })
}

impl Db {
    /// Opens the file and reads its meta pages.
    pub fn open(path: &Path) -> Result<Db, BoltError> {
        let io = |e: std::io::Error| BoltError::Io {
            path: path.to_path_buf(),
            detail: e.to_string(),
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        Db::of(Source::File(file), path, len)
    }

    fn of(source: Source, path: &Path, len: u64) -> Result<Db, BoltError> {
        let mut db = Db {
            source,
            path: path.to_path_buf(),
            len,
            meta: Meta {
                page_size: 4096,
                root: 0,
                freelist: 0,
                high_water: 0,
                txid: 0,
            },
        };
        // Page 0 says the page size; page 1 is there. Either may be the one
        // a crash left half written: the valid one with the higher txid counts.
        let first = db.read_at(0, HEADER + 64, "meta page 0")?;
        let zero = read_meta(&first);
        let size = zero.as_ref().map_or(4096, |m| u64::from(m.page_size));
        let one = match db.read_at(size, HEADER + 64, "meta page 1") {
            Ok(b) => read_meta(&b),
            Err(e) => Err(e.to_string()),
        };
        db.meta = match (zero, one) {
            (Ok(a), Ok(b)) => {
                if b.txid > a.txid && b.page_size == a.page_size {
                    b
                } else {
                    a
                }
            }
            (Ok(a), Err(_)) => a,
            (Err(_), Ok(b)) => b,
            (Err(a), Err(b)) => {
                return Err(db.bad("meta pages", format!("page 0: {a}; page 1: {b}")));
            }
        };
        let pages = len / u64::from(db.meta.page_size);
        if db.meta.high_water > pages {
            return Err(db.bad(
                "meta page",
                format!(
                    "it says {} pages, the file holds {pages}: the file is cut short",
                    db.meta.high_water
                ),
            ));
        }
        Ok(db)
    }

    pub fn meta(&self) -> Meta {
        self.meta
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn bad(&self, at: impl Into<String>, detail: impl Into<String>) -> BoltError {
        BoltError::Malformed {
            path: self.path.clone(),
            at: at.into(),
            detail: detail.into(),
        }
    }

    fn read_at(&self, offset: u64, n: usize, what: &str) -> Result<Vec<u8>, BoltError> {
        let end = offset.checked_add(n as u64);
        if end.is_none_or(|e| e > self.len) {
            return Err(self.bad(
                what,
                format!("it lies past the end of the {}-byte file", self.len),
            ));
        }
        let mut buf = vec![0; n];
        match &self.source {
            Source::File(file) => {
                file.read_exact_at(&mut buf, offset)
                    .map_err(|e| BoltError::Io {
                        path: self.path.clone(),
                        detail: format!("{what}: {e}"),
                    })?;
            }
            Source::Kept(kept) => {
                let page = kept.page(offset / kept.size).ok_or_else(|| {
                    self.bad(what, "the scan of the stream did not keep this page")
                })?;
                // A kept page may hold less than its span (a reduced leaf):
                // the rest reads as zeros, as bbolt's unused space does.
                let within = (offset % kept.size) as usize;
                if let Some(have) = page.get(within..) {
                    let n = have.len().min(n);
                    buf[..n].copy_from_slice(&have[..n]);
                }
            }
        }
        Ok(buf)
    }

    /// Page `id` with its overflow pages, checked to be one of the data's.
    fn page(&self, id: u64) -> Result<Page, BoltError> {
        let size = u64::from(self.meta.page_size);
        let at = format!("page {id}");
        if id < 2 || id >= self.meta.high_water {
            return Err(self.bad(
                at,
                format!(
                    "no such data page (the data holds pages 2 to {})",
                    self.meta.high_water.saturating_sub(1)
                ),
            ));
        }
        let head = self.read_at(id * size, HEADER, &at)?;
        let stored = u64_at(&head, 0).unwrap_or_default();
        if stored != id {
            return Err(self.bad(at, format!("its header names page {stored}")));
        }
        let overflow = u64::from(u32_at(&head, 12).unwrap_or_default());
        if id + overflow >= self.meta.high_water {
            return Err(self.bad(
                at,
                format!("its {overflow} overflow pages run past the data"),
            ));
        }
        let bytes = self.read_at(id * size, ((overflow + 1) * size) as usize, &at)?;
        Ok(Page { id, bytes })
    }

    /// The root bucket: the top-level buckets, by name.
    pub fn root(&self) -> Bucket {
        Bucket::Root(self.meta.root)
    }

    /// A top-level bucket by name (none when the file has no such bucket).
    pub fn bucket(&self, name: &[u8]) -> Result<Option<Bucket>, BoltError> {
        let mut c = self.cursor(&self.root());
        while let Some(e) = c.next_entry()? {
            if e.key == name {
                if !e.bucket {
                    return Err(self.bad(
                        format!("bucket {:?}", String::from_utf8_lossy(name)),
                        "the root holds it as a value, not a bucket",
                    ));
                }
                return self.bucket_of(&e.value).map(Some);
            }
        }
        Ok(None)
    }

    /// The bucket a bucket value names.
    pub fn bucket_of(&self, value: &[u8]) -> Result<Bucket, BoltError> {
        let root = u64_at(value, 0)
            .ok_or_else(|| self.bad("a bucket value", "it is shorter than a bucket header"))?;
        if root == 0 {
            let page = value.get(16..).unwrap_or_default().to_vec();
            Ok(Bucket::Inline(page))
        } else {
            Ok(Bucket::Root(root))
        }
    }

    /// Walks the bucket's entries in key order.
    pub fn cursor(&self, bucket: &Bucket) -> Cursor<'_> {
        Cursor {
            db: self,
            start: Some(bucket.clone()),
            stack: Vec::new(),
            visited: 0,
        }
    }

    /// The bucket's root page: its tree's, or the inline one in its value.
    fn top(&self, bucket: &Bucket) -> Result<Page, BoltError> {
        match bucket {
            Bucket::Inline(b) => Ok(Page {
                id: 0,
                bytes: b.clone(),
            }),
            Bucket::Root(id) => self.page(*id),
        }
    }

    fn too_deep(&self, id: u64) -> BoltError {
        self.bad(
            format!("page {id}"),
            "the tree is deeper than any bbolt writes (a cycle?)",
        )
    }

    /// The leaf reached from the bucket's root taking, at each branch, the
    /// child `choose` names (or an empty page on the way).
    fn descend(
        &self,
        bucket: &Bucket,
        mut choose: impl FnMut(&Page, &Node) -> Result<usize, BoltError>,
    ) -> Result<(Page, Node), BoltError> {
        let mut page = self.top(bucket)?;
        for _ in 0..MAX_DEPTH {
            let node = self.node(&page)?;
            if node.kind == Kind::Leaf || node.count == 0 {
                return Ok((page, node));
            }
            let child = self.branch_child(&page, choose(&page, &node)?)?;
            page = self.page(child)?;
        }
        Err(self.too_deep(page.id))
    }

    /// The bucket's last entry (the largest key), reading only the pages on
    /// the rightmost path.
    pub fn last(&self, bucket: &Bucket) -> Result<Option<Entry>, BoltError> {
        let (page, node) = self.descend(bucket, |_, node| Ok(node.count - 1))?;
        match node.count {
            0 => Ok(None),
            n => self.leaf_entry(&page, n - 1).map(Some),
        }
    }

    /// The value of `key` in the bucket (none when absent), reading one page
    /// per level: the child whose first key is the last at or below `key`.
    pub fn get(&self, bucket: &Bucket, key: &[u8]) -> Result<Option<Entry>, BoltError> {
        let (page, node) = self.descend(bucket, |page, node| {
            // The first element whose key is above `key`; its left
            // neighbour holds it (the first child when none is).
            let (mut lo, mut hi) = (0, node.count);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if self.branch_key(page, mid)? <= key {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            Ok(lo.saturating_sub(1))
        })?;
        if node.kind != Kind::Leaf {
            return Ok(None);
        }
        let (mut lo, mut hi) = (0, node.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let e = self.leaf_entry(&page, mid)?;
            match e.key.as_slice().cmp(key) {
                std::cmp::Ordering::Equal => return Ok(Some(e)),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        Ok(None)
    }

    fn branch_key<'p>(&self, page: &'p Page, i: usize) -> Result<&'p [u8], BoltError> {
        let e = HEADER + i * ELEMENT;
        let pos = u32_at(&page.bytes, e).unwrap_or_default();
        let ksize = u32_at(&page.bytes, e + 4).unwrap_or_default();
        self.span(page, i, pos, ksize, "key")
    }

    fn node(&self, page: &Page) -> Result<Node, BoltError> {
        let at = || format!("page {}", page.id);
        let flags = u16_at(&page.bytes, 8)
            .ok_or_else(|| self.bad(at(), "it is shorter than a page header"))?;
        let count = usize::from(u16_at(&page.bytes, 10).unwrap_or_default());
        let kind = match flags {
            BRANCH => Kind::Branch,
            LEAF => Kind::Leaf,
            other => {
                return Err(self.bad(
                    at(),
                    format!("flags {other:#x}: neither a branch nor a leaf page"),
                ));
            }
        };
        if HEADER + count * ELEMENT > page.bytes.len() {
            return Err(self.bad(at(), format!("{count} elements do not fit in the page")));
        }
        Ok(Node { kind, count })
    }

    /// The slice `len` bytes long at `pos` from element `i`'s address.
    fn span<'p>(
        &self,
        page: &'p Page,
        i: usize,
        pos: u32,
        len: u32,
        what: &str,
    ) -> Result<&'p [u8], BoltError> {
        let start = (HEADER + i * ELEMENT).checked_add(pos as usize);
        let end = start.and_then(|s| s.checked_add(len as usize));
        match (start, end) {
            (Some(s), Some(e)) if e <= page.bytes.len() => Ok(&page.bytes[s..e]),
            _ => Err(self.bad(
                format!("page {}, element {i}", page.id),
                format!("its {what} ({len} bytes at {pos}) lies outside the page"),
            )),
        }
    }

    fn leaf_entry(&self, page: &Page, i: usize) -> Result<Entry, BoltError> {
        let e = HEADER + i * ELEMENT;
        let b = &page.bytes;
        let (flags, pos, ksize, vsize) = (
            u32_at(b, e).unwrap_or_default(),
            u32_at(b, e + 4).unwrap_or_default(),
            u32_at(b, e + 8).unwrap_or_default(),
            u32_at(b, e + 12).unwrap_or_default(),
        );
        let both = ksize.checked_add(vsize).ok_or_else(|| {
            self.bad(
                format!("page {}, element {i}", page.id),
                "its key and value sizes overflow",
            )
        })?;
        let kv = self.span(page, i, pos, both, "key and value")?;
        let (key, value) = kv.split_at(ksize as usize);
        Ok(Entry {
            key: key.to_vec(),
            value: value.to_vec(),
            bucket: flags & BUCKET_LEAF != 0,
        })
    }

    fn branch_child(&self, page: &Page, i: usize) -> Result<u64, BoltError> {
        let e = HEADER + i * ELEMENT;
        Ok(u64_at(&page.bytes, e + 8).unwrap_or_default())
    }
}

/// Where a [`Db`] reads its pages.
#[derive(Debug)]
enum Source {
    File(File),
    Kept(Kept),
}

/// The pages a [`PageScan`] kept.
#[derive(Debug, Default)]
struct Kept {
    size: u64,
    whole: HashMap<u64, Vec<u8>>,
    /// Leaves reduced to their last key (at most 18 bytes), by page id in
    /// ascending order.
    last_keys: Vec<(u64, u8, [u8; 18])>,
    /// Branches reduced to their last child and its key, by page id in
    /// ascending order.
    last_children: Vec<(u64, u64, u8, [u8; 18])>,
}

impl Kept {
    /// Page `id` as kept: whole, or a page of one element: a leaf's last key
    /// (with an empty value), a branch's last child.
    fn page(&self, id: u64) -> Option<std::borrow::Cow<'_, [u8]>> {
        if let Some(p) = self.whole.get(&id) {
            return Some(std::borrow::Cow::Borrowed(p));
        }
        let (flags, key, element) =
            if let Ok(at) = self.last_keys.binary_search_by_key(&id, |k| k.0) {
                let (_, len, key) = &self.last_keys[at];
                let key = &key[..usize::from(*len)];
                // flags, pos (from the element to the key), ksize, vsize
                let mut e = 0u32.to_le_bytes().to_vec();
                e.extend((ELEMENT as u32).to_le_bytes());
                e.extend((key.len() as u32).to_le_bytes());
                e.extend(0u32.to_le_bytes());
                (LEAF, key, e)
            } else {
                let at = self.last_children.binary_search_by_key(&id, |k| k.0).ok()?;
                let (_, child, len, key) = &self.last_children[at];
                let key = &key[..usize::from(*len)];
                // pos, ksize, child page id
                let mut e = (ELEMENT as u32).to_le_bytes().to_vec();
                e.extend((key.len() as u32).to_le_bytes());
                e.extend(child.to_le_bytes());
                (BRANCH, key, e)
            };
        let mut page = Vec::with_capacity(HEADER + ELEMENT + key.len());
        page.extend(id.to_le_bytes());
        page.extend(flags.to_le_bytes());
        page.extend(1u16.to_le_bytes());
        page.extend(0u32.to_le_bytes());
        page.extend(element);
        page.extend(key);
        Some(std::borrow::Cow::Owned(page))
    }
}

/// The largest page span (a page and its overflow) a scan buffers (etcd
/// stores values up to 1.5 MiB unless told otherwise), and the most it
/// buffers of spans at once (a freed page's stale header can claim a long
/// run): a backup's memory stays bounded whatever the file holds.
const MAX_SPAN: u64 = 16 << 20;
const MAX_OPEN: usize = 2 * (MAX_SPAN as usize);
/// Reduced leaves kept: those with the largest last keys.
const MAX_LARGEST: usize = 256;
/// The most bytes of whole pages a scan keeps.
const MAX_KEPT: usize = 64 << 20;

/// A page with overflow pages, being collected as its blocks stream past.
struct Span {
    id: u64,
    len: usize,
    bytes: Vec<u8>,
}

/// Reads a bbolt file as its bytes stream past, in order and in chunks of
/// any size, keeping what [`PageScan::finish`] needs to open it as a [`Db`]
/// that can find each bucket and its last key: meta pages and the pages of
/// small buckets whole; of the pages whose first key `reduce` accepts (a
/// large bucket's), branches as their last child and only the leaves with
/// the largest last keys, as those keys. Such a `Db` can walk that bucket's
/// rightmost path and nothing else of it. Memory stays bounded
/// ([`MAX_KEPT`], [`MAX_LARGEST`]); a file that needs more is an error at
/// `finish` (or when walked), never a guess.
///
/// Every page-sized block is looked at: a block whose header names its own
/// position starts a page. Overflow counts are not trusted to skip blocks,
/// since a freed page's stale header can claim blocks that were reused.
pub struct PageScan {
    reduce: fn(&[u8]) -> bool,
    size: Option<u64>,
    /// The first page id past the data (from the meta pages), once known.
    high_water: Option<u64>,
    /// The position (page id) of the next block.
    next: u64,
    seen: u64,
    /// A block cut by a chunk's end (before the page size is known: the
    /// start of the first meta page).
    partial: Vec<u8>,
    open: Vec<Span>,
    /// The reduced leaves with the largest last keys (a min-heap).
    largest: std::collections::BinaryHeap<std::cmp::Reverse<([u8; 18], u8, u64)>>,
    kept: Kept,
    kept_bytes: usize,
    failed: Option<String>,
}

impl PageScan {
    pub fn new(reduce: fn(&[u8]) -> bool) -> PageScan {
        PageScan {
            reduce,
            size: None,
            high_water: None,
            next: 0,
            seen: 0,
            partial: Vec::new(),
            open: Vec::new(),
            largest: std::collections::BinaryHeap::new(),
            kept: Kept::default(),
            kept_bytes: 0,
            failed: None,
        }
    }

    /// The next bytes of the file.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        self.seen += chunk.len() as u64;
        while !chunk.is_empty() && self.failed.is_none() {
            if self.high_water.is_some_and(|h| self.next >= h) {
                // Past the data: etcd's trailing hash.
                return;
            }
            let size = match self.size {
                Some(s) => s as usize,
                None => {
                    let n = (HEADER + 64 - self.partial.len()).min(chunk.len());
                    self.partial.extend_from_slice(&chunk[..n]);
                    chunk = &chunk[n..];
                    if self.partial.len() == HEADER + 64 {
                        let meta = read_meta(&self.partial);
                        self.size = Some(meta.map_or(4096, |m| u64::from(m.page_size)));
                    }
                    continue;
                }
            };
            if self.partial.is_empty() && chunk.len() >= size {
                let (block, rest) = chunk.split_at(size);
                self.block(block);
                chunk = rest;
                continue;
            }
            let n = (size - self.partial.len()).min(chunk.len());
            self.partial.extend_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
            if self.partial.len() == size {
                let block = std::mem::take(&mut self.partial);
                self.block(&block);
            }
        }
    }

    /// One page-sized block at position `next`.
    fn block(&mut self, block: &[u8]) {
        let id = self.next;
        self.next += 1;
        let mut i = 0;
        while i < self.open.len() {
            self.open[i].bytes.extend_from_slice(block);
            if self.open[i].bytes.len() >= self.open[i].len {
                let span = self.open.swap_remove(i);
                self.take(span.id, &span.bytes);
            } else {
                i += 1;
            }
        }
        if u64_at(block, 0) != Some(id) {
            // Not a page's start: an overflow page, or a freed page's rest.
            return;
        }
        let overflow = u64::from(u32_at(block, 12).unwrap_or_default());
        if overflow == 0 {
            self.take(id, block);
            return;
        }
        let size = block.len() as u64;
        let len = (overflow + 1).saturating_mul(size);
        let open: usize = self.open.iter().map(|s| s.len).sum();
        let walked = matches!(u16_at(block, 8), Some(BRANCH | LEAF));
        if walked
            && len <= MAX_SPAN
            && open + len as usize <= MAX_OPEN
            && self.high_water.is_none_or(|h| id + overflow < h)
        {
            let mut bytes = Vec::with_capacity(len as usize);
            bytes.extend_from_slice(block);
            self.open.push(Span {
                id,
                len: len as usize,
                bytes,
            });
        }
        // Otherwise not kept: a walk that reaches it says so.
    }

    /// One whole page: with its overflow, and at position `id`.
    fn take(&mut self, id: u64, span: &[u8]) {
        if id < 2 {
            if let Ok(m) = read_meta(span)
                && self.high_water.is_none_or(|h| m.high_water > h)
            {
                self.high_water = Some(m.high_water);
            }
        } else {
            match u16_at(span, 8) {
                Some(BRANCH) => {
                    if let Some((key, child)) = self.reduced_branch(span) {
                        let mut fixed = [0u8; 18];
                        fixed[..key.len()].copy_from_slice(key);
                        let entry = (id, child, key.len() as u8, fixed);
                        self.kept.last_children.push(entry);
                        return;
                    }
                }
                Some(LEAF) => {
                    if let Some(key) = self.reduced(span) {
                        let mut fixed = [0u8; 18];
                        fixed[..key.len()].copy_from_slice(key);
                        // The walk reaches the leaf with the largest key; a
                        // few freed copies of it may hold larger ones (keys a
                        // compaction removed since): the largest hundreds are
                        // kept, not one entry per page.
                        let entry = (fixed, key.len() as u8, id);
                        if self.largest.len() < MAX_LARGEST {
                            self.largest.push(std::cmp::Reverse(entry));
                        } else if self.largest.peek().is_some_and(|m| m.0 < entry) {
                            self.largest.pop();
                            self.largest.push(std::cmp::Reverse(entry));
                        }
                        return;
                    }
                }
                // Freelist pages and anything else: not walked.
                _ => return,
            }
        }
        self.kept_bytes += span.len();
        if self.kept_bytes > MAX_KEPT {
            self.failed = Some(format!(
                "more than {} MiB of pages outside the large bucket",
                MAX_KEPT >> 20
            ));
            return;
        }
        self.kept.whole.insert(id, span.to_vec());
    }

    /// A branch's last child and its key, when its first key says it
    /// belongs to the bucket kept reduced (only its rightmost path is walked).
    fn reduced_branch<'s>(&self, span: &'s [u8]) -> Option<(&'s [u8], u64)> {
        let last = self.last_key(span, 0)?;
        let count = usize::from(u16_at(span, 10)?);
        let child = u64_at(span, HEADER + (count - 1) * ELEMENT + 8)?;
        Some((last, child))
    }

    /// A leaf's last key, when its first key says it belongs to the bucket
    /// kept reduced.
    fn reduced<'s>(&self, span: &'s [u8]) -> Option<&'s [u8]> {
        self.last_key(span, 4)
    }

    /// A page's last key (of at most 18 bytes), when `reduce` accepts its
    /// first; an element's pos and ksize are `at` bytes into it (a branch
    /// element starts with them, a leaf element with its flags).
    fn last_key<'s>(&self, span: &'s [u8], at: usize) -> Option<&'s [u8]> {
        let count = usize::from(u16_at(span, 10)?);
        let key = |i: usize| {
            let e = HEADER + i * ELEMENT;
            let pos = u32_at(span, e + at)? as usize;
            let ksize = u32_at(span, e + at + 4)? as usize;
            let start = e.checked_add(pos)?;
            span.get(start..start.checked_add(ksize)?)
        };
        if count == 0 || !(self.reduce)(key(0)?) {
            return None;
        }
        key(count - 1).filter(|k| k.len() <= 18)
    }

    /// The file as far as it was read; `path` names it in errors.
    pub fn finish(mut self, path: &Path) -> Result<Db, BoltError> {
        if let Some(detail) = self.failed.take() {
            return Err(BoltError::Malformed {
                path: path.to_path_buf(),
                at: "the stream".into(),
                detail,
            });
        }
        self.kept.size = self.size.unwrap_or(4096);
        // Spans end after the single pages inside them.
        self.kept.last_keys = self
            .largest
            .drain()
            .map(|std::cmp::Reverse((key, len, id))| (id, len, key))
            .collect();
        self.kept.last_keys.sort_unstable_by_key(|k| k.0);
        self.kept.last_children.sort_unstable_by_key(|k| k.0);
        Db::of(Source::Kept(self.kept), path, self.seen)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Branch,
    Leaf,
}

struct Node {
    kind: Kind,
    count: usize,
}

/// An in-order walk of one bucket's tree.
pub struct Cursor<'a> {
    db: &'a Db,
    start: Option<Bucket>,
    /// The pages from the root down, each with the next element to visit.
    stack: Vec<(Page, Node, usize)>,
    /// Pages read so far: a walk of a sound tree reads each page once, so
    /// more than the file holds is a page reached twice (branches of a
    /// damaged file pointing at one subtree), which would never end.
    visited: u64,
}

impl Cursor<'_> {
    /// The next entry in key order, or none at the end.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, BoltError> {
        if let Some(b) = self.start.take() {
            let page = self.db.top(&b)?;
            let node = self.db.node(&page)?;
            self.stack.push((page, node, 0));
        }
        loop {
            let Some((page, node, next)) = self.stack.last_mut() else {
                return Ok(None);
            };
            if *next >= node.count {
                self.stack.pop();
                continue;
            }
            let i = *next;
            *next += 1;
            match node.kind {
                Kind::Leaf => return self.db.leaf_entry(page, i).map(Some),
                Kind::Branch => {
                    let child = self.db.branch_child(page, i)?;
                    if self.stack.len() >= MAX_DEPTH {
                        return Err(self.db.too_deep(child));
                    }
                    self.visited += 1;
                    if self.visited > self.db.meta.high_water {
                        return Err(self.db.bad(
                            format!("page {child}"),
                            "the walk has read more pages than the file holds (a page reached twice)",
                        ));
                    }
                    let page = self.db.page(child)?;
                    let node = self.db.node(&page)?;
                    self.stack.push((page, node, 0));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_the_64_bit_variant() {
        // Reference values of FNV-1a 64.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
