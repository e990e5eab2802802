//! The on-disk log in the OvS standalone format (ovsdb(5)): a sequence of
//! records, each `OVSDB JSON <length> <sha1>\n<json>\n` where length and SHA-1
//! cover the JSON text plus its trailing newline. The first record is the
//! schema; each later record is one committed transaction (or, after
//! compaction, a snapshot of the whole database).
//!
//! Every append is fsync'ed before the caller acknowledges the transaction, so
//! only an unacknowledged record can be torn by a crash; on open such a tail is
//! discarded (and logged) and the file truncated back to the last good record.

use crate::error::Error;
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &str = "OVSDB JSON ";
/// Upper bound on one record; protects against absurd length fields.
const MAX_RECORD: u64 = 1 << 30;

/// An open, append-only database file.
#[derive(Debug)]
pub struct Storage {
    path: PathBuf,
    file: File,
    size: u64,
    snapshot_size: u64,
}

/// Records read from an existing file.
#[derive(Debug)]
pub struct Loaded {
    /// The schema record.
    pub schema: Value,
    /// Transaction records in order.
    pub records: Vec<Value>,
    /// Bytes of torn or corrupt tail that were discarded.
    pub discarded: u64,
}

/// Frames one record.
pub fn encode(rec: &Value) -> Vec<u8> {
    let mut text = rec.to_string();
    text.push('\n');
    let sha = sha1_smol::Sha1::from(text.as_bytes()).digest().to_string();
    let mut out = format!("{MAGIC}{} {sha}\n", text.len()).into_bytes();
    out.extend_from_slice(text.as_bytes());
    out
}

/// Splits a file image into good records; returns them and the length of the
/// good prefix.
pub fn decode_all(data: &[u8]) -> (Vec<Value>, usize) {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off < data.len() {
        match decode_one(&data[off..]) {
            Some((v, used)) => {
                out.push(v);
                off += used;
            }
            None => break,
        }
    }
    (out, off)
}

fn decode_one(data: &[u8]) -> Option<(Value, usize)> {
    let nl = data.iter().take(200).position(|b| *b == b'\n')?;
    let header = std::str::from_utf8(&data[..nl]).ok()?;
    let rest = header.strip_prefix(MAGIC)?;
    let mut parts = rest.split(' ');
    let len: u64 = parts.next()?.parse().ok()?;
    let sha = parts.next()?;
    if parts.next().is_some() || sha.len() != 40 || len > MAX_RECORD {
        return None;
    }
    let start = nl + 1;
    let end = start.checked_add(len as usize)?;
    let body = data.get(start..end)?;
    if sha1_smol::Sha1::from(body).digest().to_string() != sha {
        return None;
    }
    let v: Value = serde_json::from_slice(body).ok()?;
    Some((v, end))
}

impl Storage {
    /// Creates a new file holding only `schema` (atomically: temp + rename).
    pub fn create(path: &Path, schema: &Value) -> Result<Storage, Error> {
        write_atomically(path, &[encode(schema)])?;
        Self::open_append(path)
    }

    fn open_append(path: &Path) -> Result<Storage, Error> {
        let file = OpenOptions::new().append(true).read(true).open(path).map_err(|e| Error::io(path, e))?;
        let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
        Ok(Storage { path: path.to_path_buf(), file, size, snapshot_size: size })
    }

    /// Opens an existing file, discarding a torn tail. Returns None if the file
    /// does not exist or holds no valid schema record (then the caller creates it).
    pub fn open(path: &Path) -> Result<Option<(Storage, Loaded)>, Error> {
        let mut data = Vec::new();
        match File::open(path) {
            Ok(mut f) => {
                f.read_to_end(&mut data).map_err(|e| Error::io(path, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        }
        let (mut recs, good) = decode_all(&data);
        let discarded = (data.len() - good) as u64;
        if recs.is_empty() {
            if data.is_empty() {
                return Ok(None);
            }
            return Err(Error::Corrupt {
                path: path.display().to_string(),
                reason: "no valid schema record (not an OVSDB standalone file?)".into(),
            });
        }
        if discarded > 0 {
            tracing::warn!(path = %path.display(), discarded, "discarding torn or corrupt tail of database log");
            let f = OpenOptions::new().write(true).open(path).map_err(|e| Error::io(path, e))?;
            f.set_len(good as u64).map_err(|e| Error::io(path, e))?;
            f.sync_all().map_err(|e| Error::io(path, e))?;
        }
        let schema = recs.remove(0);
        let st = Self::open_append(path)?;
        Ok(Some((st, Loaded { schema, records: recs, discarded })))
    }

    /// Appends a record and, when `sync`, fsyncs it (and every record before it). A record
    /// written without sync still survives the process being killed (it is in the page cache);
    /// only a power loss before the next synced append can lose it.
    pub fn append(&mut self, rec: &Value, sync: bool) -> std::io::Result<()> {
        let bytes = encode(rec);
        let r = self.file.write_all(&bytes).and_then(|_| if sync { self.file.sync_data() } else { Ok(()) });
        if r.is_err() {
            // Cut off a partial write so the next append starts on a boundary.
            let _ = self.file.set_len(self.size);
            return r;
        }
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// fsyncs every record appended so far.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    /// Current size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Size right after the last compaction (or open).
    pub fn snapshot_size(&self) -> u64 {
        self.snapshot_size
    }

    /// Replaces the file by `schema` + one snapshot record (temp file, fsync,
    /// rename, fsync directory), then continues appending to the new file.
    pub fn compact(&mut self, schema: &Value, snapshot: &Value) -> Result<(), Error> {
        write_atomically(&self.path, &[encode(schema), encode(snapshot)])?;
        let fresh = Self::open_append(&self.path)?;
        *self = fresh;
        Ok(())
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn write_atomically(path: &Path, chunks: &[Vec<u8>]) -> Result<(), Error> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "db".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let res = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        for c in chunks {
            f.write_all(c)?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn framing_matches_ovsdb_tool() {
        // Header of a record written by ovsdb-tool 3.1 for this exact JSON text.
        let rec = encode(&json!({"a": 1}));
        let s = String::from_utf8(rec).unwrap();
        assert!(s.starts_with("OVSDB JSON 8 "));
        assert!(s.ends_with("{\"a\":1}\n"));
        let (v, used) = decode_all(s.as_bytes());
        assert_eq!((v.len(), used), (1, s.len()));
    }

    #[test]
    fn torn_tail_is_dropped() {
        let mut data = encode(&json!({"name": "x"}));
        let good = data.len();
        data.extend_from_slice(&encode(&json!({"t": 2}))[..10]);
        let (v, used) = decode_all(&data);
        assert_eq!((v.len(), used), (1, good));
        let mut bad = encode(&json!({"t": 3}));
        let n = bad.len();
        bad[n - 3] ^= 1;
        let mut d2 = encode(&json!({"name": "x"}));
        d2.extend_from_slice(&bad);
        assert_eq!(decode_all(&d2).0.len(), 1);
    }
}
