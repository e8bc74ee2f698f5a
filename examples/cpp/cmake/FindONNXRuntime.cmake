# FindONNXRuntime — the ONNX Runtime C/C++ library, as the imported target ONNXRuntime::ONNXRuntime.
#
# Looks, in order, at the cache variables ORT_INCLUDE_DIR (the folder holding
# onnxruntime_cxx_api.h) and ORT_LIBRARY (libonnxruntime.so / .so.1 / .dylib / onnxruntime.lib),
# then under ORT_ROOT (a CMake or environment variable: an unpacked ONNX Runtime release archive,
# include/ and lib/), then the system's paths (Debian/Ubuntu's libonnxruntime-dev, Homebrew).
# Sets ONNXRuntime_FOUND, ONNXRuntime_INCLUDE_DIR, ONNXRuntime_LIBRARY.
set(_ort_roots "")
if(ORT_ROOT)
  list(APPEND _ort_roots "${ORT_ROOT}")
endif()
if(DEFINED ENV{ORT_ROOT})
  list(APPEND _ort_roots "$ENV{ORT_ROOT}")
endif()

find_path(ORT_INCLUDE_DIR onnxruntime_cxx_api.h
  HINTS ${_ort_roots}
  PATH_SUFFIXES include include/onnxruntime include/onnxruntime/core/session
  DOC "folder holding onnxruntime_cxx_api.h")
find_library(ORT_LIBRARY
  NAMES onnxruntime libonnxruntime.so.1
  HINTS ${_ort_roots}
  PATH_SUFFIXES lib lib64
  DOC "the ONNX Runtime shared library")

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(ONNXRuntime
  REQUIRED_VARS ORT_LIBRARY ORT_INCLUDE_DIR
  FAIL_MESSAGE "ONNX Runtime not found: set ORT_ROOT to an unpacked release archive (include/ and lib/), or ORT_INCLUDE_DIR and ORT_LIBRARY")
set(ONNXRuntime_INCLUDE_DIR "${ORT_INCLUDE_DIR}")
set(ONNXRuntime_LIBRARY "${ORT_LIBRARY}")

if(ONNXRuntime_FOUND AND NOT TARGET ONNXRuntime::ONNXRuntime)
  add_library(ONNXRuntime::ONNXRuntime UNKNOWN IMPORTED)
  set_target_properties(ONNXRuntime::ONNXRuntime PROPERTIES
    IMPORTED_LOCATION "${ORT_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${ORT_INCLUDE_DIR}")
endif()
mark_as_advanced(ORT_INCLUDE_DIR ORT_LIBRARY)
