#!/usr/bin/env bash
# Builds the C++ example into examples/cpp/build (prints the binary's path on the last line).
#
#   ORT_ROOT=/opt/onnxruntime-linux-x64-1.20.1 examples/cpp/build.sh    any Linux: a release archive
#   examples/cpp/build.sh                                                Debian/Ubuntu, as scripts/test does
#
# With ORT_ROOT (an unpacked ONNX Runtime release archive: include/ and lib/, the `-gpu-` one for
# CUDA/TensorRT, or Jetson's build) it uses that and needs nothing else. Without it, on Debian:
# headers from the libonnxruntime-dev package of Debian 13 ("trixie"), fetched with
# `apt-get download` through a private apt state (its own sources list and lists/cache folders;
# the system's sources and package database are untouched) and unpacked with dpkg-deb, and the
# library of the PyPI onnxruntime wheel (ORT_LIBRARY, default: $ORT_DYLIB_PATH, then
# reference/.venv's). The C API is versioned, so headers of 1.21 work with the 1.32 library.
#
# Needs cmake, a C++17 compiler and, for dlvp_detect, OpenCV (scripts/test installs them when root).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=$here/build
if [ -n "${ORT_ROOT:-}" ]; then
  [ -f "$ORT_ROOT/include/onnxruntime_cxx_api.h" ] || [ -f "$ORT_ROOT/include/onnxruntime/onnxruntime_cxx_api.h" ] \
    || { echo "build.sh: ORT_ROOT=$ORT_ROOT has no include/onnxruntime_cxx_api.h (unpack an ONNX Runtime release archive there)" >&2; exit 1; }
  cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release -DORT_ROOT="$ORT_ROOT" >/dev/null
  cmake --build "$build" -j 2 >/dev/null
  echo "$build/dlvp_detect"
  exit 0
fi
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null \
  || { echo "build.sh: not a Debian system: set ORT_ROOT to an unpacked ONNX Runtime release archive (include/ and lib/)" >&2; exit 1; }
headers=$build/onnxruntime-headers
if [ ! -f "$headers/usr/include/onnxruntime/onnxruntime_cxx_api.h" ]; then
  apt_dir=$build/apt
  rm -rf "$apt_dir"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$headers"
  # The mirror this machine already uses; the trixie suite of it.
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$uri" ] || { echo "build.sh: no Debian mirror found in the apt sources" >&2; exit 1; }
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri trixie main" > "$apt_dir/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
            -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::Archives=$apt_dir/archives"
            -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o "Debug::NoLocking=1"
            -o "APT::Sandbox::User=root")
  apt-get "${apt_opts[@]}" -qq update
  (cd "$apt_dir" && apt-get "${apt_opts[@]}" -qq download libonnxruntime-dev)
  dpkg-deb -x "$apt_dir"/libonnxruntime-dev_*.deb "$headers"
fi
ort_lib=${ORT_LIBRARY:-${ORT_DYLIB_PATH:-}}
if [ -z "$ort_lib" ]; then
  ort_lib=$(ls "$repo"/reference/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -n 1)
fi
[ -f "$ort_lib" ] || { echo "build.sh: no libonnxruntime (set ORT_LIBRARY; scripts/test creates reference/.venv)" >&2; exit 1; }
# The wheel ships libonnxruntime.so.1.X.Y only; the binary asks for its soname, libonnxruntime.so.1.
mkdir -p "$build/lib"
ln -sf "$(cd "$(dirname "$ort_lib")" && pwd)/$(basename "$ort_lib")" "$build/lib/libonnxruntime.so.1"
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DORT_INCLUDE_DIR="$headers/usr/include/onnxruntime" -DORT_LIBRARY="$build/lib/libonnxruntime.so.1" >/dev/null
cmake --build "$build" -j 2 >/dev/null
echo "$build/dlvp_detect"
