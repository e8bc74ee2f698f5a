// dlvp/onnx_metadata.hpp — an ONNX file's metadata_props, read without loading the model.
//
// Header-only, no dependencies. The detector needs the model's image size before it creates an
// ONNX Runtime session: TensorRT's optimisation profile (`trt_profile_*_shapes`) names the input
// shape, and a session is created once. Loading the graph twice (once to read the metadata) would
// double the start-up of a 1.6 GB ViT-L/14 graph, so this walks the top level of the ModelProto
// protobuf instead and skips every field but `metadata_props` (field 14, StringStringEntryProto
// {key = 1, value = 2}) by its length: the graph's weights are seeked over, not read.
#pragma once

#include <cstdint>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>

namespace dlvp {

// what(): "PATH: REASON"; reason() alone, for callers that word their own message.
class MetadataError : public std::runtime_error {
 public:
  MetadataError(const std::string& path, const std::string& reason)
      : std::runtime_error(path + ": " + reason), reason_(reason) {}
  const std::string& reason() const { return reason_; }

 private:
  std::string reason_;
};

namespace detail {

// Protobuf base-128 varint; false at a clean end of input (nothing read).
inline bool read_varint(std::istream& in, std::uint64_t& value, const std::string& path) {
  value = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    const int c = in.get();
    if (c == std::char_traits<char>::eof()) {
      if (shift == 0) return false;
      throw MetadataError(path, "not an ONNX model (the file ends inside a protobuf varint)");
    }
    value |= static_cast<std::uint64_t>(c & 0x7f) << shift;
    if ((c & 0x80) == 0) return true;
  }
  throw MetadataError(path, "not an ONNX model (a protobuf varint longer than 10 bytes)");
}

// The key and value of one serialised StringStringEntryProto.
inline std::pair<std::string, std::string> parse_entry(const std::string& bytes, const std::string& path) {
  std::pair<std::string, std::string> entry;
  std::size_t at = 0;
  auto varint = [&](std::uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (at >= bytes.size()) throw MetadataError(path, "a metadata_props entry is truncated");
      const unsigned char c = static_cast<unsigned char>(bytes[at++]);
      v |= static_cast<std::uint64_t>(c & 0x7f) << shift;
      if ((c & 0x80) == 0) return;
    }
    throw MetadataError(path, "a metadata_props entry has a malformed varint");
  };
  while (at < bytes.size()) {
    std::uint64_t tag = 0, length = 0;
    varint(tag);
    if ((tag & 7) != 2) throw MetadataError(path, "a metadata_props entry has a field that is not a string");
    varint(length);
    if (length > bytes.size() - at) throw MetadataError(path, "a metadata_props entry is truncated");
    std::string text = bytes.substr(at, static_cast<std::size_t>(length));
    at += static_cast<std::size_t>(length);
    if ((tag >> 3) == 1) entry.first = std::move(text);
    else if ((tag >> 3) == 2) entry.second = std::move(text);
  }
  return entry;
}

}  // namespace detail

// The model's metadata_props as key → value. Throws MetadataError naming the file when it cannot
// be opened or is not a protobuf ModelProto.
inline std::map<std::string, std::string> read_onnx_metadata(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw MetadataError(path, "cannot open the model file");
  in.seekg(0, std::ios::end);
  const std::uint64_t size = static_cast<std::uint64_t>(in.tellg());
  in.seekg(0, std::ios::beg);
  std::map<std::string, std::string> props;
  std::uint64_t tag = 0;
  while (detail::read_varint(in, tag, path)) {
    const std::uint64_t field = tag >> 3;
    std::uint64_t skip = 0;
    switch (tag & 7) {
      case 0:  // varint (ir_version, model_version)
        if (!detail::read_varint(in, skip, path)) throw MetadataError(path, "not an ONNX model (the file ends inside a field)");
        skip = 0;
        break;
      case 1: skip = 8; break;
      case 5: skip = 4; break;
      case 2: {
        if (!detail::read_varint(in, skip, path)) throw MetadataError(path, "not an ONNX model (the file ends inside a field)");
        const std::uint64_t here = static_cast<std::uint64_t>(in.tellg());
        if (skip > size - here)
          throw MetadataError(path, "not an ONNX model (a protobuf field runs past the end of the file)");
        if (field == 14) {
          std::string bytes(static_cast<std::size_t>(skip), '\0');
          in.read(bytes.data(), static_cast<std::streamsize>(skip));
          props.insert(detail::parse_entry(bytes, path));
          skip = 0;
        }
        break;
      }
      default:
        throw MetadataError(path, "not an ONNX model (protobuf wire type " + std::to_string(tag & 7) + ")");
    }
    if (field == 0) throw MetadataError(path, "not an ONNX model (protobuf field number 0)");
    if (skip > 0) in.seekg(static_cast<std::streamoff>(skip), std::ios::cur);
    if (!in) throw MetadataError(path, "not an ONNX model (the file ends inside a field)");
  }
  return props;
}

}  // namespace dlvp
