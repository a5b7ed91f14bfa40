//! The durable Raft log: append-only segment files of CRC-framed records, with group
//! commit. `append` writes a batch with one `write` and returns; a syncer thread
//! `fdatasync`s and only then tells openraft the entries are durable, so every
//! proposal waiting at that moment shares one sync.
//!
//! Record: `[payload len: u32 BE][crc32 of payload: u32 BE][payload: JSON Entry]`.
//! A torn record at the tail of the last segment (power loss mid-write) is cut off
//! when the log is opened. Vote and purge point live in `meta.json`, replaced
//! atomically and fsynced; the committed index is a hint written without sync
//! (openraft only uses it to re-apply sooner after a restart).

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::RangeBounds;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, RaftLogReader};
use serde::{Deserialize, Serialize};

use super::types::{Entry, LogId, StorageError, TypeConfig, Vote};

/// Segments roll over at this size.
const SEGMENT_BYTES: u64 = 64 << 20;
/// Recently appended entries kept decoded in memory: the state machine and
/// replication read the tail of the log right after it is written.
const CACHE_ENTRIES: usize = 4096;

#[derive(Default, Serialize, Deserialize)]
struct Meta {
    vote: Option<Vote>,
    last_purged: Option<LogId>,
}

struct Segment {
    first_index: u64,
    path: PathBuf,
    file: File,
    len: u64,
}

struct Located {
    segment: u64,
    offset: u64,
    len: u32,
    log_id: LogId,
}

struct Inner {
    dir: PathBuf,
    durable: bool,
    segments: BTreeMap<u64, Segment>,
    index: BTreeMap<u64, Located>,
    cache: VecDeque<Entry>,
    meta: Meta,
    committed: Option<LogId>,
    /// Kept open and overwritten in place: rewriting a file per commit would add
    /// inode churn to every journal commit the log's fsync makes.
    committed_file: File,
}

/// The committed-index hint is padded to a fixed size so an in-place overwrite never
/// leaves a longer old record's tail behind.
const COMMITTED_RECORD: usize = 128;

fn io_err(subject: ErrorSubject<u64>, verb: ErrorVerb, e: impl Into<io::Error>) -> StorageError {
    StorageError::from_io_error(subject, verb, e.into())
}

fn log_err(e: impl Into<io::Error>) -> StorageError {
    io_err(ErrorSubject::Logs, ErrorVerb::Write, e)
}

fn segment_name(first_index: u64) -> String {
    format!("{first_index:020}.log")
}

/// Fsyncs a directory so a created/renamed/removed file entry is durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn decode(payload: &[u8]) -> io::Result<Entry> {
    serde_json::from_slice(payload).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

impl Inner {
    fn open(dir: &Path, durable: bool) -> io::Result<Inner> {
        fs::create_dir_all(dir)?;
        let meta = match fs::read(dir.join("meta.json")) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Meta::default(),
            Err(e) => return Err(e),
        };
        let committed = fs::read(dir.join("committed"))
            .ok()
            .and_then(|b| serde_json::from_slice(b.trim_ascii()).ok());
        let committed_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("committed"))?;
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            durable,
            segments: BTreeMap::new(),
            index: BTreeMap::new(),
            cache: VecDeque::new(),
            meta,
            committed,
            committed_file,
        };
        let mut firsts: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
            .collect();
        firsts.sort_unstable();
        let count = firsts.len();
        for (i, first) in firsts.into_iter().enumerate() {
            inner.load_segment(first, i + 1 == count)?;
        }
        // Entries at or below the purge point may still sit in the oldest segment.
        if let Some(p) = inner.meta.last_purged {
            inner.index.retain(|i, _| *i > p.index);
        }
        Ok(inner)
    }

    /// Reads a segment's records into the index; a bad tail on the last segment is
    /// truncated away, anywhere else it is corruption.
    fn load_segment(&mut self, first: u64, last: bool) -> io::Result<()> {
        let path = self.dir.join(segment_name(first));
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let size = file.metadata()?.len();
        let mut offset = 0u64;
        let mut header = [0u8; 8];
        while offset < size {
            let ok = (|| -> io::Result<Option<(u32, Entry)>> {
                if offset + 8 > size {
                    return Ok(None);
                }
                file.read_exact_at(&mut header, offset)?;
                let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
                let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
                if offset + 8 + len as u64 > size {
                    return Ok(None);
                }
                let mut payload = vec![0u8; len as usize];
                file.read_exact_at(&mut payload, offset + 8)?;
                if crc32fast::hash(&payload) != crc {
                    return Ok(None);
                }
                Ok(decode(&payload).ok().map(|e| (len, e)))
            })()?;
            match ok {
                Some((len, entry)) => {
                    // A later record for an index replaces everything from there on
                    // (a truncation that was followed by new appends).
                    let idx = entry.log_id.index;
                    let _ = self.index.split_off(&idx);
                    self.index.insert(
                        idx,
                        Located {
                            segment: first,
                            offset: offset + 8,
                            len,
                            log_id: entry.log_id,
                        },
                    );
                    offset += 8 + len as u64;
                }
                None if last => {
                    tracing::warn!(segment = %path.display(), offset, "cutting torn record at the log tail");
                    file.set_len(offset)?;
                    file.sync_data()?;
                    break;
                }
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "raft log segment {} is corrupt at byte {offset}",
                            path.display()
                        ),
                    ));
                }
            }
        }
        let len = offset.min(size);
        self.segments.insert(
            first,
            Segment {
                first_index: first,
                path,
                file,
                len,
            },
        );
        Ok(())
    }

    fn last_log_id(&self) -> Option<LogId> {
        self.index
            .values()
            .next_back()
            .map(|l| l.log_id)
            .or(self.meta.last_purged)
    }

    fn save_meta(&self) -> io::Result<()> {
        let tmp = self.dir.join("meta.json.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(&self.meta)?)?;
        if self.durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, self.dir.join("meta.json"))?;
        if self.durable {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// The segment to append to, rolling over to a new file when the current one is
    /// full. The full one is synced first so segments become durable in order.
    fn active_segment(&mut self, next_index: u64) -> io::Result<&mut Segment> {
        let need_new = match self.segments.values().next_back() {
            None => true,
            Some(s) => s.len >= SEGMENT_BYTES,
        };
        if need_new {
            if let Some(s) = self.segments.values().next_back()
                && self.durable
            {
                s.file.sync_data()?;
            }
            let path = self.dir.join(segment_name(next_index));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)?;
            if self.durable {
                sync_dir(&self.dir)?;
            }
            self.segments.insert(
                next_index,
                Segment {
                    first_index: next_index,
                    path,
                    file,
                    len: 0,
                },
            );
        }
        Ok(self
            .segments
            .values_mut()
            .next_back()
            .expect("segment exists"))
    }

    fn append(&mut self, entries: Vec<Entry>) -> io::Result<()> {
        let Some(first) = entries.first().map(|e| e.log_id.index) else {
            return Ok(());
        };
        let seg = self.active_segment(first)?;
        let seg_first = seg.first_index;
        let mut buf = Vec::new();
        let mut located = Vec::with_capacity(entries.len());
        let mut offset = seg.len;
        for e in &entries {
            let payload = serde_json::to_vec(e)?;
            buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            buf.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
            buf.extend_from_slice(&payload);
            located.push(Located {
                segment: seg_first,
                offset: offset + 8,
                len: payload.len() as u32,
                log_id: e.log_id,
            });
            offset += 8 + payload.len() as u64;
        }
        seg.file.write_all_at(&buf, seg.len)?;
        seg.len = offset;
        for l in located {
            self.index.insert(l.log_id.index, l);
        }
        for e in entries {
            self.cache.push_back(e);
            if self.cache.len() > CACHE_ENTRIES {
                self.cache.pop_front();
            }
        }
        Ok(())
    }

    fn read(&self, index: u64) -> io::Result<Option<Entry>> {
        if let Some(front) = self.cache.front()
            && index >= front.log_id.index
        {
            let pos = (index - front.log_id.index) as usize;
            if let Some(e) = self.cache.get(pos)
                && e.log_id.index == index
            {
                return Ok(Some(e.clone()));
            }
        }
        let Some(loc) = self.index.get(&index) else {
            return Ok(None);
        };
        let seg = &self.segments[&loc.segment];
        let mut payload = vec![0u8; loc.len as usize];
        seg.file.read_exact_at(&mut payload, loc.offset)?;
        decode(&payload).map(Some)
    }

    /// Deletes entries at `index` and after.
    fn truncate(&mut self, index: u64) -> io::Result<()> {
        let Some(loc) = self.index.get(&index) else {
            return Ok(());
        };
        let (seg_first, cut_at) = (loc.segment, loc.offset - 8);
        let _ = self.index.split_off(&index);
        self.cache.retain(|e| e.log_id.index < index);
        let later: Vec<u64> = self
            .segments
            .range(seg_first + 1..)
            .map(|(k, _)| *k)
            .collect();
        for k in later {
            if let Some(s) = self.segments.remove(&k) {
                fs::remove_file(&s.path)?;
            }
        }
        if let Some(seg) = self.segments.get_mut(&seg_first) {
            seg.file.set_len(cut_at)?;
            seg.len = cut_at;
            if self.durable {
                seg.file.sync_data()?;
            }
        }
        Ok(())
    }

    /// Forgets entries up to and including `log_id`; whole segments below it are
    /// deleted.
    fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        self.meta.last_purged = Some(log_id);
        self.save_meta()?;
        self.index.retain(|i, _| *i > log_id.index);
        self.cache.retain(|e| e.log_id.index > log_id.index);
        let firsts: Vec<u64> = self.segments.keys().copied().collect();
        for (i, first) in firsts.iter().enumerate() {
            // A segment can go if the next one starts at or below the purge point + 1.
            let Some(next) = firsts.get(i + 1) else { break };
            if *next <= log_id.index + 1
                && let Some(s) = self.segments.remove(first)
            {
                fs::remove_file(&s.path)?;
            }
        }
        Ok(())
    }

    fn active_file(&self) -> Option<File> {
        self.segments
            .values()
            .next_back()
            .and_then(|s| s.file.try_clone().ok())
    }
}

/// The log store handed to openraft; clones share one log.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
    syncer: mpsc::Sender<(File, LogFlushed<TypeConfig>)>,
}

impl LogStore {
    /// Opens the log in `dir`. `durable = false` (`-dev`) never fsyncs.
    pub fn open(dir: &Path, durable: bool) -> io::Result<LogStore> {
        let inner = Inner::open(dir, durable)?;
        let (tx, rx) = mpsc::channel::<(File, LogFlushed<TypeConfig>)>();
        std::thread::Builder::new()
            .name("raft-log-sync".into())
            .spawn(move || syncer(rx))?;
        Ok(LogStore {
            inner: Arc::new(Mutex::new(inner)),
            syncer: tx,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Group commit: takes every pending callback, syncs once, then acknowledges them all.
fn syncer(rx: mpsc::Receiver<(File, LogFlushed<TypeConfig>)>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        // All pending appends wrote to the same active segment unless a roll-over
        // happened, in which case the older segment was synced at roll-over time.
        let result = batch.last().map(|(f, _)| f.sync_data()).unwrap_or(Ok(()));
        for (_, cb) in batch {
            let r = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            cb.log_io_completed(r);
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + std::fmt::Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let inner = self.lock();
        let indexes: Vec<u64> = inner.index.range(range).map(|(i, _)| *i).collect();
        let mut out = Vec::with_capacity(indexes.len());
        for i in indexes {
            match inner
                .read(i)
                .map_err(|e| io_err(ErrorSubject::Log(LogId::default()), ErrorVerb::Read, e))?
            {
                Some(e) => out.push(e),
                None => break,
            }
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let inner = self.lock();
        Ok(LogState {
            last_purged_log_id: inner.meta.last_purged,
            last_log_id: inner.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let mut inner = self.lock();
        inner.meta.vote = Some(*vote);
        inner
            .save_meta()
            .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock().meta.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let mut inner = self.lock();
        inner.committed = committed;
        let mut record = serde_json::to_vec(&committed).unwrap_or_default();
        if record.len() > COMMITTED_RECORD {
            return Ok(());
        }
        record.resize(COMMITTED_RECORD, b' ');
        inner
            .committed_file
            .write_all_at(&record, 0)
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let (durable, file) = {
            let mut inner = self.lock();
            inner
                .append(entries.into_iter().collect())
                .map_err(log_err)?;
            (inner.durable, inner.active_file())
        };
        match (durable, file) {
            (true, Some(f)) => {
                if let Err(mpsc::SendError((_, cb))) = self.syncer.send((f, callback)) {
                    cb.log_io_completed(Err(io::Error::other("log syncer stopped")));
                }
            }
            _ => callback.log_io_completed(Ok(())),
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.lock().truncate(log_id.index).map_err(log_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.lock().purge(log_id).map_err(log_err)
    }
}
