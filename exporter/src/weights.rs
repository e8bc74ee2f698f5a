//! Checkpoint reader: memory-mapped safetensors (model-spec/README.md
//! "Checkpoint format").
//!
//! [`Checkpoint::open`] checks the whole layout up front — header length, JSON, every tensor's
//! dtype, shape and byte range, no overlaps, no holes — so a damaged file fails at once with the
//! tensor named. Tensor data stays on disk until read; f32, f16 and bf16 all read as f32.
//!
//! [`Weights`] is a prefix scope over a checkpoint (`w.pp("visual").pp("ln_pre")`), taken by
//! value, with a shape-checked [`Weights::get`] and a ledger shared by every scope of one root,
//! so the caller can list the tensors it asked for that were missing or mis-shaped, and the
//! checkpoint tensors it never read.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use memmap2::Mmap;
use ndarray::{ArrayD, IxDyn};

use crate::manifest::ExpectedShape;
use crate::spec::{Spec, SpecError};

/// Metadata key holding the checkpoint format tag.
pub const FORMAT_KEY: &str = "format";
/// Metadata key holding the model spec as YAML.
pub const SPEC_KEY: &str = "spec";
/// The format tag this reader understands.
pub const FORMAT_TAG: &str = "dlvp-clip/1";

/// safetensors' own limit on the JSON header; anything larger is a damaged or hostile file.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Element type of a stored tensor. Only the float types convert to f32.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F16,
    BF16,
    /// Any other safetensors dtype tag (`I64`, `F8_E4M3`, ...), kept for error messages.
    Other(String),
}

impl Dtype {
    fn parse(tag: &str) -> Dtype {
        match tag {
            "F32" => Dtype::F32,
            "F16" => Dtype::F16,
            "BF16" => Dtype::BF16,
            other => Dtype::Other(other.to_string()),
        }
    }

    /// Bytes per element, for the dtypes whose size safetensors defines.
    fn size(&self) -> Option<usize> {
        Some(match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
            Dtype::Other(tag) => match tag.as_str() {
                "F64" | "I64" | "U64" | "C64" => 8,
                "I32" | "U32" => 4,
                "I16" | "U16" => 2,
                "I8" | "U8" | "BOOL" | "F8_E4M3" | "F8_E5M2" | "F8_E8M0" => 1,
                _ => return None,
            },
        })
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dtype::F32 => f.write_str("F32"),
            Dtype::F16 => f.write_str("F16"),
            Dtype::BF16 => f.write_str("BF16"),
            Dtype::Other(tag) => f.write_str(tag),
        }
    }
}

/// Where one tensor lives in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Byte range within the data section (after the header).
    pub data_offsets: (usize, usize),
}

impl TensorInfo {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{}: cannot read checkpoint: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: not a safetensors file: {len} bytes, fewer than the 8-byte header length", path.display())]
    TooShort { path: PathBuf, len: u64 },
    #[error(
        "{}: safetensors header length {header_len} runs past the end of the {file_len}-byte file \
         (truncated or not a safetensors file)",
        path.display()
    )]
    HeaderPastEnd {
        path: PathBuf,
        header_len: u64,
        file_len: u64,
    },
    #[error(
        "{}: safetensors header length {header_len} exceeds the {MAX_HEADER_BYTES}-byte limit (not a safetensors file?)",
        path.display()
    )]
    HeaderTooLarge { path: PathBuf, header_len: u64 },
    #[error("{}: safetensors header is not valid JSON: {message}", path.display())]
    HeaderJson { path: PathBuf, message: String },
    #[error("{}: safetensors header: {message}", path.display())]
    HeaderLayout { path: PathBuf, message: String },
    #[error("{}: tensor `{tensor}`: {message}", path.display())]
    BadEntry {
        path: PathBuf,
        tensor: String,
        message: String,
    },
    #[error("{}: tensors `{first}` and `{second}` overlap in the data section", path.display())]
    Overlap {
        path: PathBuf,
        first: String,
        second: String,
    },
    #[error("{}: tensor `{tensor}` ends at byte {end} of a {data_len}-byte data section (truncated file?)", path.display())]
    PastEnd {
        path: PathBuf,
        tensor: String,
        end: usize,
        data_len: usize,
    },
    #[error("{}: data section has {bytes} bytes that no tensor covers, starting at byte {start}", path.display())]
    Hole {
        path: PathBuf,
        start: usize,
        bytes: usize,
    },
    #[error("{}: tensor `{tensor}` has dtype {dtype}; only F32, F16 and BF16 are supported", path.display())]
    UnsupportedDtype {
        path: PathBuf,
        tensor: String,
        dtype: Dtype,
    },
    #[error("{}: tensor `{tensor}` is missing (expected shape {expected})", path.display())]
    Missing {
        path: PathBuf,
        tensor: String,
        expected: ExpectedShape,
    },
    #[error("{}: tensor `{tensor}` has shape {found:?}, expected {expected}", path.display())]
    Shape {
        path: PathBuf,
        tensor: String,
        found: Vec<usize>,
        expected: ExpectedShape,
    },
    #[error(
        "{}: tensor `{tensor}` holds {nan} NaN and {inf} infinite values (first at flat index {first_index})",
        path.display()
    )]
    NonFinite {
        path: PathBuf,
        tensor: String,
        nan: usize,
        inf: usize,
        first_index: usize,
    },
    #[error("{}: metadata `{FORMAT_KEY}` is {found:?}; this version reads {FORMAT_TAG:?}", path.display())]
    Format { path: PathBuf, found: String },
    #[error("{}: metadata `{SPEC_KEY}`: {error}", path.display())]
    EmbeddedSpec { path: PathBuf, error: SpecError },
}

/// An open, layout-checked safetensors checkpoint.
pub struct Checkpoint {
    path: PathBuf,
    map: Mmap,
    data_start: usize,
    tensors: BTreeMap<String, TensorInfo>,
    metadata: BTreeMap<String, String>,
}

impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpoint")
            .field("path", &self.path)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl Checkpoint {
    /// Maps `path` and checks its layout.
    pub fn open(path: &Path) -> Result<Checkpoint, WeightsError> {
        let io = |error| WeightsError::Io {
            path: path.to_path_buf(),
            error,
        };
        let file = File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        if file_len < 8 {
            return Err(WeightsError::TooShort {
                path: path.to_path_buf(),
                len: file_len,
            });
        }
        // SAFETY: the map is read-only. A checkpoint truncated by another process while we hold
        // the map would fault; that is the documented limit of every mmap-based reader.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        let header_len = u64::from_le_bytes(map[..8].try_into().expect("slice of 8 bytes"));
        if header_len > MAX_HEADER_BYTES {
            return Err(WeightsError::HeaderTooLarge {
                path: path.to_path_buf(),
                header_len,
            });
        }
        if header_len > file_len - 8 {
            return Err(WeightsError::HeaderPastEnd {
                path: path.to_path_buf(),
                header_len,
                file_len,
            });
        }
        let data_start = 8 + header_len as usize;
        let (tensors, metadata) = parse_header(path, &map[8..data_start])?;
        check_layout(path, &tensors, map.len() - data_start)?;
        let ckpt = Checkpoint {
            path: path.to_path_buf(),
            map,
            data_start,
            tensors,
            metadata,
        };
        if let Some(found) = ckpt.format() {
            if found != FORMAT_TAG {
                return Err(WeightsError::Format {
                    path: path.to_path_buf(),
                    found: found.to_string(),
                });
            }
        }
        Ok(ckpt)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tensor names and layouts, sorted by name.
    pub fn tensors(&self) -> &BTreeMap<String, TensorInfo> {
        &self.tensors
    }

    /// The free-form `__metadata__` map of the header.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// The `format` tag, if the checkpoint carries one (a plain OpenCLIP file does not).
    pub fn format(&self) -> Option<&str> {
        self.metadata.get(FORMAT_KEY).map(String::as_str)
    }

    /// The spec stored in the metadata, parsed and validated; `None` when absent.
    pub fn embedded_spec(&self) -> Result<Option<Spec>, WeightsError> {
        let Some(text) = self.metadata.get(SPEC_KEY) else {
            return Ok(None);
        };
        let origin = format!("{} (metadata `{SPEC_KEY}`)", self.path.display());
        Spec::from_yaml(text, &origin)
            .map(Some)
            .map_err(|error| WeightsError::EmbeddedSpec {
                path: self.path.clone(),
                error,
            })
    }

    /// Total bytes of tensor data.
    pub fn data_bytes(&self) -> usize {
        self.map.len() - self.data_start
    }

    /// The stored bytes of a tensor (little-endian, its own dtype), for tensors that are not floats.
    pub fn raw_bytes(&self, name: &str) -> Option<&[u8]> {
        let (begin, end) = self.tensors.get(name)?.data_offsets;
        Some(&self.map[self.data_start + begin..self.data_start + end])
    }

    /// An I64 tensor's values (golden `topk_indices`); `None` if absent or not I64.
    pub fn read_i64(&self, name: &str) -> Option<Vec<i64>> {
        if self.tensors.get(name)?.dtype != Dtype::Other("I64".into()) {
            return None;
        }
        Some(
            self.raw_bytes(name)?
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect(),
        )
    }

    /// Reads one tensor as f32, converting f16/bf16, and rejects NaN/Inf.
    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>, WeightsError> {
        let info = self
            .tensors
            .get(name)
            .ok_or_else(|| WeightsError::Missing {
                path: self.path.clone(),
                tensor: name.to_string(),
                expected: ExpectedShape::Exact(vec![]),
            })?;
        let (begin, end) = info.data_offsets;
        let range = self.data_start + begin..self.data_start + end;
        let bytes = &self.map[range.clone()];
        let values: Vec<f32> = match &info.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::Other(_) => {
                return Err(WeightsError::UnsupportedDtype {
                    path: self.path.clone(),
                    tensor: name.to_string(),
                    dtype: info.dtype.clone(),
                })
            }
        };
        self.release(range);
        let (nan, inf) = values.iter().fold((0, 0), |(n, i), v| {
            (n + v.is_nan() as usize, i + v.is_infinite() as usize)
        });
        if nan + inf > 0 {
            let first_index = values.iter().position(|v| !v.is_finite()).unwrap_or(0);
            return Err(WeightsError::NonFinite {
                path: self.path.clone(),
                tensor: name.to_string(),
                nan,
                inf,
                first_index,
            });
        }
        Ok(values)
    }

    /// Lets go of the pages of a byte range once it has been converted. A mapped file's pages
    /// count in the process's resident memory until they are released, and an export converts
    /// every tensor once: without this the weights would be resident twice at the end of the
    /// build (mapped and converted), 3.4 GB for ViT-L/14's 1.65 GB graph. A later read of the
    /// range faults the pages in again from the page cache.
    fn release(&self, range: std::ops::Range<usize>) {
        #[cfg(unix)]
        // SAFETY: the map is a shared, read-only mapping of the file (`Mmap::map`), so dropping
        // its pages changes no byte a later read sees: it is read from the file again. No
        // reference into the range outlives this call's caller's conversion.
        unsafe {
            // Advice only: if the kernel declines, the pages stay and nothing else changes.
            let _ = self.map.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                range.start,
                range.len(),
            );
        }
        #[cfg(not(unix))]
        let _ = range;
    }

    /// The root scope of this checkpoint, with a fresh ledger.
    pub fn root(self: Arc<Self>) -> Weights {
        Weights {
            ckpt: self,
            prefix: String::new(),
            ledger: Arc::new(Mutex::new(Ledger::default())),
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [usize; 2],
}

type Header = (BTreeMap<String, TensorInfo>, BTreeMap<String, String>);

fn parse_header(path: &Path, bytes: &[u8]) -> Result<Header, WeightsError> {
    let json_err = |message: String| WeightsError::HeaderJson {
        path: path.to_path_buf(),
        message,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| json_err(format!("not UTF-8: {e}")))?;
    let root: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| json_err(e.to_string()))?;
    let mut tensors = BTreeMap::new();
    let mut metadata = BTreeMap::new();
    for (name, value) in root {
        if name == "__metadata__" {
            metadata = serde_json::from_value(value).map_err(|e| WeightsError::HeaderLayout {
                path: path.to_path_buf(),
                message: format!("`__metadata__` must map strings to strings: {e}"),
            })?;
            continue;
        }
        let bad = |message: String| WeightsError::BadEntry {
            path: path.to_path_buf(),
            tensor: name.clone(),
            message,
        };
        let raw: RawEntry =
            serde_json::from_value(value).map_err(|e| bad(format!("malformed entry: {e}")))?;
        let dtype = Dtype::parse(&raw.dtype);
        let [begin, end] = raw.data_offsets;
        if end < begin {
            return Err(bad(format!(
                "data_offsets [{begin}, {end}] end before they begin"
            )));
        }
        let elem = dtype
            .size()
            .ok_or_else(|| bad(format!("unknown dtype {:?}", raw.dtype)))?;
        let bytes = raw
            .shape
            .iter()
            .try_fold(elem, |acc, &d| acc.checked_mul(d));
        if bytes != Some(end - begin) {
            return Err(bad(format!(
                "shape {:?} of {} needs {} bytes but data_offsets [{begin}, {end}] hold {}",
                raw.shape,
                dtype,
                bytes.map_or("more than usize::MAX".to_string(), |b| b.to_string()),
                end - begin
            )));
        }
        tensors.insert(
            name,
            TensorInfo {
                dtype,
                shape: raw.shape,
                data_offsets: (begin, end),
            },
        );
    }
    Ok((tensors, metadata))
}

/// Every byte of the data section belongs to exactly one tensor, as the safetensors format requires.
fn check_layout(
    path: &Path,
    tensors: &BTreeMap<String, TensorInfo>,
    data_len: usize,
) -> Result<(), WeightsError> {
    let mut spans: Vec<(usize, usize, &str)> = tensors
        .iter()
        .map(|(name, t)| (t.data_offsets.0, t.data_offsets.1, name.as_str()))
        .collect();
    spans.sort();
    let mut covered = 0usize;
    let mut previous = "";
    for &(begin, end, name) in &spans {
        if end > data_len {
            return Err(WeightsError::PastEnd {
                path: path.to_path_buf(),
                tensor: name.to_string(),
                end,
                data_len,
            });
        }
        if begin < covered {
            return Err(WeightsError::Overlap {
                path: path.to_path_buf(),
                first: previous.to_string(),
                second: name.to_string(),
            });
        }
        if begin > covered {
            return Err(WeightsError::Hole {
                path: path.to_path_buf(),
                start: covered,
                bytes: begin - covered,
            });
        }
        if end > begin {
            previous = name;
        }
        covered = end;
    }
    if covered < data_len {
        return Err(WeightsError::Hole {
            path: path.to_path_buf(),
            start: covered,
            bytes: data_len - covered,
        });
    }
    Ok(())
}

/// What happened to each tensor requested through any scope of one root.
#[derive(Debug, Default, Clone)]
struct Ledger {
    used: BTreeSet<String>,
    missing: BTreeMap<String, ExpectedShape>,
    mis_shaped: BTreeMap<String, (Vec<usize>, ExpectedShape)>,
}

/// The ledger's account of a checkpoint after the caller has read what it needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LedgerReport {
    /// Requested and read successfully.
    pub used: Vec<String>,
    /// Requested but absent, with the shape that was expected.
    pub missing: Vec<(String, ExpectedShape)>,
    /// Requested but present with another shape: (name, found, expected).
    pub mis_shaped: Vec<(String, Vec<usize>, ExpectedShape)>,
    /// Present in the checkpoint but never requested.
    pub unused: Vec<String>,
}

/// A prefix scope over a checkpoint; cheap to clone, every clone shares the root's ledger.
#[derive(Clone)]
pub struct Weights {
    ckpt: Arc<Checkpoint>,
    prefix: String,
    ledger: Arc<Mutex<Ledger>>,
}

impl fmt::Debug for Weights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Weights")
            .field("path", &self.ckpt.path)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Weights {
    /// The scope `prefix.name` (`w.pp("visual").pp("ln_pre")` reads `visual.ln_pre.*`).
    pub fn pp(&self, name: impl fmt::Display) -> Weights {
        let prefix = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        };
        Weights {
            ckpt: Arc::clone(&self.ckpt),
            prefix,
            ledger: Arc::clone(&self.ledger),
        }
    }

    /// The full tensor name of `name` in this scope.
    pub fn full_name(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    pub fn checkpoint(&self) -> &Checkpoint {
        &self.ckpt
    }

    pub fn contains(&self, name: &str) -> bool {
        self.ckpt.tensors.contains_key(&self.full_name(name))
    }

    /// Reads `name` in this scope, which must have exactly `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<ArrayD<f32>, WeightsError> {
        self.get_expected(name, &ExpectedShape::Exact(shape.to_vec()))
    }

    /// Reads `name` in this scope, which must match `expected`; the ledger records the outcome.
    pub fn get_expected(
        &self,
        name: &str,
        expected: &ExpectedShape,
    ) -> Result<ArrayD<f32>, WeightsError> {
        let full = self.full_name(name);
        let mut ledger = self
            .ledger
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(info) = self.ckpt.tensors.get(&full) else {
            ledger.missing.insert(full.clone(), expected.clone());
            return Err(WeightsError::Missing {
                path: self.ckpt.path.clone(),
                tensor: full,
                expected: expected.clone(),
            });
        };
        if !expected.matches(&info.shape) {
            ledger
                .mis_shaped
                .insert(full.clone(), (info.shape.clone(), expected.clone()));
            return Err(WeightsError::Shape {
                path: self.ckpt.path.clone(),
                tensor: full,
                found: info.shape.clone(),
                expected: expected.clone(),
            });
        }
        // Counted as used even when the values are bad: the tensor is known, its content is the problem.
        ledger.used.insert(full.clone());
        drop(ledger);
        let values = self.ckpt.read_f32(&full)?;
        Ok(ArrayD::from_shape_vec(IxDyn(&info.shape), values)
            .expect("byte length was checked against the shape at open"))
    }

    /// The ledger so far, for every scope of this root.
    pub fn ledger(&self) -> LedgerReport {
        let ledger = self
            .ledger
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let unused = self
            .ckpt
            .tensors
            .keys()
            .filter(|name| !ledger.used.contains(*name) && !ledger.mis_shaped.contains_key(*name))
            .cloned()
            .collect();
        LedgerReport {
            used: ledger.used.iter().cloned().collect(),
            missing: ledger
                .missing
                .iter()
                .map(|(n, e)| (n.clone(), e.clone()))
                .collect(),
            mis_shaped: ledger
                .mis_shaped
                .iter()
                .map(|(n, (f, e))| (n.clone(), f.clone(), e.clone()))
                .collect(),
            unused,
        }
    }
}
