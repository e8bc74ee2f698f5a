//! Reading an ONNX model file safely: a size limit, and external data (ONNX's convention of
//! weights in a side file named by each initializer's `location`, relative to the model's
//! folder) resolved and inlined so that every backend gets one self-contained buffer.
//!
//! A model is someone else's file: its `location` entries may point anywhere (`../../etc/shadow`,
//! an absolute path, a symlink out of the folder) and its offsets past the end of the data. Those
//! are refused, naming the initializer. The limit applies to the model and its external data
//! together; its default is protobuf's 2 GiB message limit, which an inlined model cannot exceed.

use std::path::{Component, Path, PathBuf};

use dlvp_onnx_proto as pb;
use prost::Message;

/// 2 GiB: the largest protobuf message ONNX Runtime's parser accepts.
pub const DEFAULT_MAX_MODEL_BYTES: u64 = 2 << 30;

#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct ModelFileError {
    pub path: PathBuf,
    /// What went wrong, as data (a front end adds the option that raises a limit).
    pub kind: ModelFileErrorKind,
    pub message: String,
    /// The I/O error behind it, when there is one.
    #[source]
    pub source: Option<std::io::Error>,
}

/// What kind of failure a [`ModelFileError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFileErrorKind {
    /// The file (or its external data) could not be read.
    Io,
    /// The model, with its external data, is larger than the limit.
    TooLarge { bytes: u64, limit: u64 },
    /// Not a model we can read: not ONNX, or external data that is missing, out of bounds or
    /// outside the model's folder.
    Invalid,
}

/// What a checkpoint given for a graph is told (`FILE` its path): a protobuf decoder would only
/// say `invalid tag value: 0` of it, from the first byte of its header's length.
pub const CHECKPOINT: &str = "a checkpoint (safetensors), not an ONNX graph: run `dlvp export --weights FILE --out model.onnx`";

/// Whether `bytes` are a safetensors file: a little-endian u64 header length, then that many
/// bytes of a JSON object. An ONNX file's first eight bytes (protobuf tags, the IR version, the
/// start of the producer's name) read as such a length claim far more than the file holds.
pub fn is_safetensors(bytes: &[u8]) -> bool {
    let Some(head) = bytes.get(..8) else {
        return false;
    };
    let n = u64::from_le_bytes(head.try_into().expect("8 bytes"));
    n >= 2 && n <= (bytes.len() - 8) as u64 && bytes[8] == b'{'
}

/// The model at `path` as one buffer with all external data inlined; at most `max_bytes` in all.
pub fn read(path: &Path, max_bytes: u64) -> Result<Vec<u8>, ModelFileError> {
    let fail = |message: String| ModelFileError {
        path: path.to_path_buf(),
        kind: ModelFileErrorKind::Invalid,
        message,
        source: None,
    };
    let unreadable = |source: std::io::Error| ModelFileError {
        path: path.to_path_buf(),
        kind: ModelFileErrorKind::Io,
        message: "cannot read model".into(),
        source: Some(source),
    };
    let too_big = |what: &str, bytes: u64| ModelFileError {
        path: path.to_path_buf(),
        kind: ModelFileErrorKind::TooLarge {
            bytes,
            limit: max_bytes,
        },
        message: format!(
            "{what} {bytes} bytes, over the limit of {max_bytes} bytes ({:.1} MiB)",
            max_bytes as f64 / (1 << 20) as f64
        ),
        source: None,
    };
    let size = std::fs::metadata(path).map_err(unreadable)?.len();
    if size > max_bytes {
        return Err(too_big("the model is", size));
    }
    let bytes = std::fs::read(path).map_err(unreadable)?;
    if is_safetensors(&bytes) {
        return Err(fail(
            CHECKPOINT.replace("FILE", &path.display().to_string()),
        ));
    }
    // Most models are self-contained: find out without a full decode (a copy of every weight).
    match crate::onnx_head::ModelHead::decode_from(&bytes) {
        Ok(head) if !head.has_external_data() => return Ok(bytes),
        _ => {}
    }
    let Ok(mut model) = pb::ModelProto::decode(&bytes[..]) else {
        // Not ONNX: the metadata reader says so in its own words.
        return Ok(bytes);
    };
    let Some(graph) = model.graph.as_mut() else {
        return Ok(bytes);
    };
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tensors = external_tensors(graph);
    if tensors.is_empty() {
        return Ok(bytes);
    }
    let mut places = Vec::with_capacity(tensors.len());
    for tensor in &tensors {
        let place = locate(tensor, &folder)
            .map_err(|m| fail(format!("initializer `{}`: {m}", tensor.name)))?;
        places.push(place);
    }
    let total = places
        .iter()
        .fold(size, |sum, p| sum.saturating_add(p.length));
    if total > max_bytes {
        return Err(too_big("the model with its external data is", total));
    }
    for (tensor, place) in tensors.iter_mut().zip(&places) {
        tensor.raw_data = place
            .read()
            .map_err(|m| fail(format!("initializer `{}`: {m}", tensor.name)))?;
        tensor.external_data.clear();
        tensor.data_location = Some(pb::tensor_proto::DataLocation::Default as i32);
    }
    Ok(model.encode_to_vec())
}

/// Every tensor of the graph (initializers and `Constant` values) that keeps its data outside.
fn external_tensors(graph: &mut pb::GraphProto) -> Vec<&mut pb::TensorProto> {
    let external = |t: &pb::TensorProto| {
        t.data_location == Some(pb::tensor_proto::DataLocation::External as i32)
    };
    let constants = graph
        .node
        .iter_mut()
        .flat_map(|n| n.attribute.iter_mut())
        .filter_map(|a| a.t.as_mut());
    graph
        .initializer
        .iter_mut()
        .chain(constants)
        .filter(|t| external(t))
        .collect()
}

/// Where one tensor's external bytes are: a file inside the model's folder, checked to hold them.
struct Place {
    file: PathBuf,
    offset: u64,
    length: u64,
}

impl Place {
    fn read(&self) -> Result<Vec<u8>, String> {
        use std::io::{Read, Seek, SeekFrom};
        let name = self.file.display();
        let mut f = std::fs::File::open(&self.file).map_err(|e| format!("{name}: {e}"))?;
        f.seek(SeekFrom::Start(self.offset))
            .map_err(|e| format!("{name}: {e}"))?;
        let mut data = vec![0u8; self.length as usize];
        f.read_exact(&mut data)
            .map_err(|e| format!("{name}: {e}"))?;
        Ok(data)
    }
}

/// Checks where a tensor's external bytes are and that there are as many as its shape needs.
fn locate(tensor: &pb::TensorProto, folder: &Path) -> Result<Place, String> {
    let entry = |key: &str| {
        tensor
            .external_data
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
    };
    let location = entry("location").ok_or("external data without a `location`")?;
    let number = |key: &str| -> Result<Option<u64>, String> {
        entry(key)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| format!("external data `{key}` is {v:?}, not a byte count"))
            })
            .transpose()
    };
    let relative = Path::new(location);
    if relative.is_absolute()
        || relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "external data {location:?} is not a plain path inside the model's folder"
        ));
    }
    let file = folder.join(relative);
    let real = file
        .canonicalize()
        .map_err(|e| format!("external data {}: {e}", file.display()))?;
    let real_folder = folder
        .canonicalize()
        .map_err(|e| format!("{}: {e}", folder.display()))?;
    if !real.starts_with(&real_folder) {
        return Err(format!(
            "external data {location:?} leads out of the model's folder (to {})",
            real.display()
        ));
    }
    let file_len = std::fs::metadata(&real)
        .map_err(|e| format!("external data {}: {e}", real.display()))?
        .len();
    let offset = number("offset")?.unwrap_or(0);
    let length = match number("length")? {
        Some(l) => l,
        None => file_len.saturating_sub(offset),
    };
    if offset.checked_add(length).is_none_or(|end| end > file_len) {
        return Err(format!(
            "external data {location:?}: bytes {offset}..{} are past its end ({file_len} bytes)",
            offset.saturating_add(length)
        ));
    }
    if let Some(expected) = byte_size(tensor) {
        if expected != length {
            return Err(format!(
                "external data {location:?}: {length} bytes, but shape {:?} of its type needs {expected}",
                tensor.dims
            ));
        }
    }
    Ok(Place {
        file: real,
        offset,
        length,
    })
}

/// Bytes a tensor of this shape and ONNX data type holds (None: strings, or an unknown type).
fn byte_size(tensor: &pb::TensorProto) -> Option<u64> {
    use pb::tensor_proto::DataType as T;
    let element: u64 = match T::try_from(tensor.data_type).ok()? {
        T::Uint8 | T::Int8 | T::Bool => 1,
        T::Uint16 | T::Int16 | T::Float16 | T::Bfloat16 => 2,
        T::Float | T::Int32 | T::Uint32 => 4,
        T::Double | T::Int64 | T::Uint64 | T::Complex64 => 8,
        T::Complex128 => 16,
        _ => return None,
    };
    tensor.dims.iter().try_fold(element, |acc, d| {
        u64::try_from(*d).ok().and_then(|d| acc.checked_mul(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A checkpoint passed for a graph is named as one, with the command that compiles it,
    /// instead of the protobuf decoder's `invalid tag value: 0`.
    #[test]
    fn a_safetensors_checkpoint_is_refused_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let header = br#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&1.0f32.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        assert!(is_safetensors(&bytes));
        let err = read(&path, DEFAULT_MAX_MODEL_BYTES).unwrap_err();
        assert_eq!(err.kind, ModelFileErrorKind::Invalid);
        assert_eq!(
            err.to_string(),
            format!(
                "{0}: a checkpoint (safetensors), not an ONNX graph: run `dlvp export --weights {0} --out model.onnx`",
                path.display()
            )
        );
        // Not one: too short, a header longer than the file, no JSON object where it begins.
        assert!(!is_safetensors(&bytes[..8]));
        assert!(!is_safetensors(&bytes[..20]));
        assert!(!is_safetensors(b"\x08\x07\x12\x04dlvp\x3a\x02\x10\x11"));
    }
}
