// dlvp/detector.hpp — run a `dlvp export` graph from C++ through the ONNX Runtime C++ API.
//
// Header-only; needs onnxruntime_cxx_api.h and libonnxruntime (see ../README.md). The model's
// metadata is the contract (model-spec/README.md, "Graph contract"): `dlvp.image_size`,
// `dlvp.preprocess.mean` / `.std` / `.resize` and `dlvp.input` say how to feed it, so nothing is
// hard-coded here. Input `image` f32 [B, 3, S, S] (normalised here) or, for graphs exported with
// --embed-preprocess, `image_u8` uint8 [B, S, S, 3] RGB (normalised in the graph). Outputs
// `anomaly_score` [B], `anomaly_map` [B, 1, S, S], `topk_indices` [B, K].
//
// Images come as pipelines hold them: 8-bit RGB, BGR, RGBA, BGRA or mono, rows `stride` bytes apart,
// already S×S (dlvp/resize.hpp resizes them exactly as Pillow, and so `dlvp detect`, does).
#pragma once

#include <dlvp/onnx_metadata.hpp>
#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace dlvp {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The layouts industrial cameras and pipelines deliver. Gray is replicated to RGB and alpha is
// dropped, as model-spec §1 says.
enum class Channels { RGB, BGR, RGBA, BGRA, Gray };

// Bytes per pixel of a layout.
inline int pixel_bytes(Channels c) {
  switch (c) {
    case Channels::Gray: return 1;
    case Channels::RGBA:
    case Channels::BGRA: return 4;
    default: return 3;
  }
}

struct ImageView {
  const std::uint8_t* data;
  int width;
  int height;
  std::size_t stride;  // bytes from one row to the next (>= pixel_bytes(channels) * width)
  Channels channels;
};

struct Preprocess {
  int image_size = 0;
  std::array<float, 3> mean{};
  std::array<float, 3> std{};
  std::string resize;  // "bicubic" or "bilinear" (Pillow's filters)
};

// Decision thresholds `dlvp threshold` stored in the graph (`dlvp.threshold.*`, model-spec
// "Decision thresholds"): calibrated on `images` good images so that at most `false_alarm` of
// good images like them are NG.
struct Thresholds {
  float image = 0;   // an anomaly_score above it is NG
  float pixel = 0;   // an anomaly_map value above it is in the mask
  double false_alarm = 0;
  long images = 0;
};

enum class Verdict { Ok, Ng };

// NG unless the score is at or below the threshold: a tie is OK (the side split-conformal
// calibration guarantees, and the rule of `dlvp detect`, `dlvp eval` and `dlvp serve`), and a score
// that is not a number is NG — a graph that returns NaN must never pass a part, so the test is
// written as `<=`, which NaN fails.
inline Verdict decide(float score, float threshold) { return score <= threshold ? Verdict::Ok : Verdict::Ng; }

// The shortest decimal that reads back as `v` ("NaN", "inf" as Rust prints them): messages then
// show the number the rule saw, with the same words as the Rust runtime's.
inline std::string number_text(double v, int max_digits = 17) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char text[40];
  for (int digits = 1; digits <= max_digits; ++digits) {
    std::snprintf(text, sizeof text, "%.*g", digits, v);
    if (max_digits <= 9 ? std::strtof(text, nullptr) == static_cast<float>(v) : std::strtod(text, nullptr) == v) break;
  }
  return text;
}
inline std::string number_text(float v) { return number_text(static_cast<double>(v), 9); }

// Why `value` cannot be a decision threshold, or nothing when it can. anomaly_score and
// anomaly_map lie in [0, 1], so a NaN threshold (every comparison false), one at or above 1 or
// +inf would pass every part, and one below 0 would make every part NG: a decision that never
// looks at the part. The words are the Rust runtime's (decision::check_threshold), so
// `dlvp detect` and this detector refuse a graph or a flag alike.
inline std::optional<std::string> threshold_problem(float value) {
  const std::string range = ": scores and map values lie in [0, 1], so a threshold must be at least 0 and below 1";
  if (std::isnan(value)) return number_text(value) + " is not a number: a NaN threshold would pass every part";
  if (value >= 1.0f) return number_text(value) + " would pass every part" + range;
  if (value < 0.0f) return number_text(value) + " would make every part NG" + range;
  return std::nullopt;
}

// Whether `text` is a plain decimal number ("0.25", "-1", "2.5e-3"), the way Rust's parser reads
// one: strtod alone also takes leading spaces and hexadecimal ("0x1p-1"), which `dlvp detect`
// refuses, and both front ends must take the same graphs. "nan" and "inf" are not decimals.
inline bool is_decimal(const std::string& text) {
  if (text.empty() || text.find_first_not_of("0123456789+-.eE") != std::string::npos) return false;
  char* end = nullptr;
  std::strtod(text.c_str(), &end);
  return end != text.c_str() && *end == '\0';
}

// A threshold written as text (a command-line flag, a configuration file): the number, or
// std::invalid_argument saying why it cannot decide (not a number, NaN, outside [0, 1)). "nan" and
// "inf" are read as numbers first, as `dlvp detect --threshold` reads them, so the refusal says
// what is wrong with them; spaces around the number are dropped, as there.
inline float parse_threshold(std::string text) {
  const auto space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!text.empty() && space(text.back())) text.pop_back();
  text.erase(0, std::find_if_not(text.begin(), text.end(), space) - text.begin());
  std::string word = text.substr(text.empty() || (text[0] != '+' && text[0] != '-') ? 0 : 1);
  for (char& c : word) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (word != "nan" && word != "inf" && word != "infinity" && !is_decimal(text))
    throw std::invalid_argument("\"" + text + "\" is not a number; expected one in [0, 1)");
  const float value = std::strtof(text.c_str(), nullptr);
  if (const auto why = threshold_problem(value)) throw std::invalid_argument(*why);
  return value;
}

inline const char* verdict_name(Verdict v) { return v == Verdict::Ng ? "NG" : "OK"; }

struct ModelInfo {
  std::string input;  // "image" or "image_u8"
  Preprocess preprocess;
  int top_k = 0;
  // An int8 graph whose weights use the full int8 range (`dlvp.int8.weight_range` "full", or
  // absent on an int8 graph): exact on CPUs only where int8 products accumulate in 32 bits.
  bool int8_full_range = false;
  // The graph's stored decision thresholds, when it was calibrated (`dlvp threshold`).
  std::optional<Thresholds> thresholds;
};

// Whether ONNX Runtime's CPU int8 kernels add every product in 32 bits on this CPU (VNNI on
// x86-64; always elsewhere). Without VNNI they sum pairs of u8 x s8 products in 16 bits with
// saturation, which only weights within +-64 (dlvp export's default) never overflow.
inline bool cpu_int8_dot_product_exact() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512vnni") || __builtin_cpu_supports("avxvnni");
#elif defined(__x86_64__) || defined(_M_X64)
  return false;  // cannot tell: assume the 16-bit kernels
#else
  return true;
#endif
}

struct Detection {
  float score = 0;
  int size = 0;                 // the map is size × size, row-major
  std::vector<float> map;
  std::vector<std::int64_t> topk;
  // OK/NG at the detector's image threshold (the graph's stored one, or set_threshold's); empty
  // when it has none.
  std::optional<Verdict> verdict;
};

enum class Provider { Cpu, Cuda, TensorRt, Auto };

// GPU settings (CUDA and TensorRT providers); the defaults keep fp32 parity with the reference.
struct GpuOptions {
  int device = 0;
  // TensorRT: allow fp16 kernels; LayerNorm stays fp32 (trt_layer_norm_fp32_fallback).
  bool fp16 = false;
  // TensorRT: allow int8 kernels, for graphs exported with `dlvp export --int8` (their Q/DQ
  // scales are used as they are; no calibration table).
  bool int8 = false;
  // TensorRT: engine and timing cache folder, so only the first process start builds the engine.
  std::string cache_dir;
  // TensorRT: builder workspace in bytes (0: ONNX Runtime's default).
  std::size_t workspace_bytes = 0;
  // TensorRT: the optimisation profile spans batch 1 to max_batch (tuned for max_batch), so no
  // batch up to it makes TensorRT build another engine; detect() refuses larger batches.
  int max_batch = 8;
  // CUDA and TensorRT: allow TF32 (faster on Ampere/Orin, ~1e-3 from fp32). When false, CUDA
  // gets use_tf32=0 and, for TensorRT (whose provider has no option), NVIDIA_TF32_OVERRIDE=0 is
  // set in the environment unless already set.
  bool allow_tf32 = false;
};

// ONNX Runtime's environment for every detector of the process: its logger and one intra-op
// thread pool that all their sessions share (ONNX Runtime's global thread pools), so two
// detectors on one machine use its cores once, not twice. Make one per process, or let the
// detectors use Runtime::shared(); use env() for any other session your program creates.
class Runtime {
 public:
  // intra_op_threads: threads of the shared pool (0: ONNX Runtime's choice, one per core).
  explicit Runtime(int intra_op_threads = 0) : env_(threading(intra_op_threads), ORT_LOGGING_LEVEL_ERROR, "dlvp") {}

  Ort::Env& env() { return env_; }

  // The process-wide runtime the detectors use unless given one (made on first use).
  static std::shared_ptr<Runtime> shared() {
    static std::shared_ptr<Runtime> runtime = std::make_shared<Runtime>();
    return runtime;
  }

 private:
  static Ort::ThreadingOptions threading(int intra_op_threads) {
    Ort::ThreadingOptions options;
    options.SetGlobalIntraOpNumThreads(intra_op_threads);
    options.SetGlobalInterOpNumThreads(1);
    return options;
  }

  Ort::Env env_;
};

// Load a model once per process and share the detector between the pipeline's threads; several
// detectors (other models, or one per GPU) share one Runtime's threads.
class Detector {
 public:
  // Loads `model_path`; throws dlvp::Error naming the file and the problem.
  explicit Detector(const std::string& model_path, Provider provider = Provider::Cpu, int device = 0)
      : Detector(model_path, provider, on_device(device)) {}

  Detector(const std::string& model_path, Provider provider, const GpuOptions& gpu,
           std::shared_ptr<Runtime> runtime = Runtime::shared())
      : path_(model_path), gpu_(gpu), runtime_(std::move(runtime)) {
    if (!runtime_) fail("no dlvp::Runtime given (pass Runtime::shared() or your own)");
    // The metadata first, without loading the graph: TensorRT's profile needs the image size
    // before the one session is created.
    try {
      read_metadata(read_onnx_metadata(model_path));
    } catch (const MetadataError& e) {
      fail("cannot load the model: " + e.reason());
    }
    Ort::SessionOptions base;
    base.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
    base.DisablePerSessionThreads();  // the Runtime's pool
    Ort::SessionOptions options = add_provider(base, provider, gpu);
    if (provider_ == "CPUExecutionProvider" && info_.int8_full_range && !cpu_int8_dot_product_exact())
      fail("ONNX Runtime's CPU kernels would compute this int8 graph wrongly on this CPU: its weights use "
           "the full int8 range, and without VNNI (avx512_vnni, avx_vnni) pairs of int8 products are "
           "summed in 16 bits with saturation; re-export it with `dlvp export --int8` (weights within "
           "+-64, the default)");
    try {
      session_ = Ort::Session(runtime_->env(), model_path.c_str(), options);
    } catch (const Ort::Exception& e) {
      fail(std::string("cannot load the model: ") + e.what());
    }
    try {
      check_io();
    } catch (const Ort::Exception& e) {
      fail(std::string("reading the model: ") + e.what());
    }
  }

  const ModelInfo& info() const { return info_; }
  // The execution provider that runs: "CPUExecutionProvider", "CUDAExecutionProvider", ...
  const std::string& provider() const { return provider_; }
  // Why `Provider::Auto` skipped a provider, one line each.
  const std::vector<std::string>& notes() const { return notes_; }

  // The image threshold detect() decides at: set_threshold's, else the graph's stored one.
  std::optional<float> threshold() const {
    if (threshold_) return threshold_;
    if (info_.thresholds) return info_.thresholds->image;
    return std::nullopt;
  }
  // Decide at `image` instead of the stored threshold (as `dlvp detect --threshold`). Set it
  // before the threads that call detect() start. A threshold that cannot decide (NaN, below 0, at
  // or above 1: threshold_problem) throws std::invalid_argument and leaves the detector as it was,
  // so no part is ever decided by it.
  void set_threshold(float image) {
    if (const auto why = threshold_problem(image)) throw std::invalid_argument("the image threshold " + *why);
    threshold_ = image;
  }

  // Scores a batch. May be called from several threads at once: ONNX Runtime's Run is
  // thread-safe and the detector keeps no per-call state. Every failure is a dlvp::Error.
  std::vector<Detection> detect(const std::vector<ImageView>& images) {
    try {
      return run_batch(images);
    } catch (const Ort::Exception& e) {
      fail(std::string("inference failed: ") + e.what());
    }
  }

 private:
  std::vector<Detection> run_batch(const std::vector<ImageView>& images) {
    const int s = info_.preprocess.image_size;
    const std::size_t batch = images.size();
    if (batch == 0) return {};
    if (provider_ == "TensorrtExecutionProvider" && batch > static_cast<std::size_t>(gpu_.max_batch)) {
      std::ostringstream m;
      m << "a batch of " << batch << " images is larger than the TensorRT profile's " << gpu_.max_batch
        << " (GpuOptions::max_batch)";
      fail(m.str());
    }
    const std::size_t plane = static_cast<std::size_t>(s) * s;
    Ort::MemoryInfo memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
    std::vector<float> f32;
    std::vector<std::uint8_t> u8;
    Ort::Value input{nullptr};
    for (const ImageView& img : images) {
      if (img.width != s || img.height != s) {
        std::ostringstream m;
        m << "an image is " << img.width << "x" << img.height << "; the model takes " << s << "x" << s
          << " (resize it first)";
        fail(m.str());
      }
      if (img.data == nullptr) fail("an image has no pixels (null data pointer)");
      if (img.stride < static_cast<std::size_t>(pixel_bytes(img.channels)) * s)
        fail("an image's stride is shorter than its row");
    }
    if (info_.input == "image_u8") {
      u8.resize(batch * plane * 3);
      for (std::size_t b = 0; b < batch; ++b) {
        const ImageView& img = images[b];
        for (int y = 0; y < s; ++y) {
          const std::uint8_t* row = img.data + y * img.stride;
          std::uint8_t* out = u8.data() + (b * plane + static_cast<std::size_t>(y) * s) * 3;
          const int n = pixel_bytes(img.channels);
          for (int x = 0; x < s; ++x)
            for (int c = 0; c < 3; ++c) out[x * 3 + c] = row[x * n + channel(img, c)];
        }
      }
      const std::array<std::int64_t, 4> shape{static_cast<std::int64_t>(batch), s, s, 3};
      input = Ort::Value::CreateTensor<std::uint8_t>(memory, u8.data(), u8.size(), shape.data(), shape.size());
    } else {
      // §1 of the model spec: x/255, then (x − mean) / std, in f32 as the reference does.
      f32.resize(batch * plane * 3);
      const Preprocess& p = info_.preprocess;
      for (std::size_t b = 0; b < batch; ++b) {
        const ImageView& img = images[b];
        for (int c = 0; c < 3; ++c) {
          float* out = f32.data() + (b * 3 + c) * plane;
          const int from = channel(img, c), n = pixel_bytes(img.channels);
          for (int y = 0; y < s; ++y) {
            const std::uint8_t* row = img.data + y * img.stride;
            for (int x = 0; x < s; ++x)
              out[static_cast<std::size_t>(y) * s + x] =
                  (static_cast<float>(row[x * n + from]) / 255.0f - p.mean[c]) / p.std[c];
          }
        }
      }
      const std::array<std::int64_t, 4> shape{static_cast<std::int64_t>(batch), 3, s, s};
      input = Ort::Value::CreateTensor<float>(memory, f32.data(), f32.size(), shape.data(), shape.size());
    }
    const char* input_names[] = {info_.input.c_str()};
    const char* output_names[] = {"anomaly_score", "anomaly_map", "topk_indices"};
    std::vector<Ort::Value> out;
    try {
      out = session_.Run(Ort::RunOptions{nullptr}, input_names, &input, 1, output_names, 3);
    } catch (const Ort::Exception& e) {
      fail(std::string("inference failed: ") + e.what());
    }
    const float* scores = out[0].GetTensorData<float>();
    const float* maps = out[1].GetTensorData<float>();
    const std::int64_t* topk = out[2].GetTensorData<std::int64_t>();
    std::vector<Detection> result(batch);
    const std::optional<float> at = threshold();
    for (std::size_t b = 0; b < batch; ++b) {
      result[b].score = scores[b];
      if (at) result[b].verdict = decide(scores[b], *at);
      result[b].size = s;
      result[b].map.assign(maps + b * plane, maps + (b + 1) * plane);
      result[b].topk.assign(topk + b * info_.top_k, topk + (b + 1) * info_.top_k);
    }
    return result;
  }

 private:
  [[noreturn]] void fail(const std::string& message) const { throw Error(path_ + ": " + message); }

  static GpuOptions on_device(int device) {
    GpuOptions gpu;
    gpu.device = device;
    return gpu;
  }

  // Where RGB channel c sits in a pixel of the image's layout.
  static int channel(const ImageView& img, int c) {
    switch (img.channels) {
      case Channels::BGR:
      case Channels::BGRA: return 2 - c;
      case Channels::Gray: return 0;
      default: return c;
    }
  }

  // The session options with the provider appended (tried on a copy, so a provider that fails
  // half-way in Auto mode leaves nothing attached and provider() tells the truth).
  Ort::SessionOptions add_provider(const Ort::SessionOptions& base, Provider provider, const GpuOptions& gpu) {
    const std::string id = std::to_string(gpu.device);
    auto cuda = [&](Ort::SessionOptions& options) {
      const OrtApi& api = Ort::GetApi();
      OrtCUDAProviderOptionsV2* cuda_options = nullptr;
      Ort::ThrowOnError(api.CreateCUDAProviderOptions(&cuda_options));
      // TF32 off unless allowed: it would cost the 1e-4 parity with the reference.
      const char* keys[] = {"device_id", "use_tf32"};
      const char* values[] = {id.c_str(), gpu.allow_tf32 ? "1" : "0"};
      OrtStatus* status = api.UpdateCUDAProviderOptions(cuda_options, keys, values, 2);
      if (status == nullptr) status = api.SessionOptionsAppendExecutionProvider_CUDA_V2(options, cuda_options);
      api.ReleaseCUDAProviderOptions(cuda_options);
      Ort::ThrowOnError(status);
    };
    auto tensorrt = [&](Ort::SessionOptions& options) {
      // TensorRT builds fp32 layers with TF32 unless NVIDIA's libraries read this as they start.
      if (!gpu.allow_tf32) setenv("NVIDIA_TF32_OVERRIDE", "0", 0);
      const OrtApi& api = Ort::GetApi();
      OrtTensorRTProviderOptionsV2* trt = nullptr;
      Ort::ThrowOnError(api.CreateTensorRTProviderOptions(&trt));
      const std::string workspace = std::to_string(gpu.workspace_bytes);
      std::vector<const char*> keys = {"device_id", "trt_fp16_enable", "trt_layer_norm_fp32_fallback", "trt_int8_enable"};
      std::vector<const char*> values = {id.c_str(), gpu.fp16 ? "1" : "0", "1", gpu.int8 ? "1" : "0"};
      if (!gpu.cache_dir.empty()) {
        for (const char* k : {"trt_engine_cache_enable", "trt_timing_cache_enable"}) {
          keys.push_back(k);
          values.push_back("1");
        }
        for (const char* k : {"trt_engine_cache_path", "trt_timing_cache_path"}) {
          keys.push_back(k);
          values.push_back(gpu.cache_dir.c_str());
        }
      }
      if (gpu.workspace_bytes > 0) {
        keys.push_back("trt_max_workspace_size");
        values.push_back(workspace.c_str());
      }
      if (gpu.max_batch < 1) fail("GpuOptions::max_batch must be at least 1");
      const std::string smallest = profile_shape(1), largest = profile_shape(gpu.max_batch);
      keys.insert(keys.end(), {"trt_profile_min_shapes", "trt_profile_opt_shapes", "trt_profile_max_shapes"});
      values.insert(values.end(), {smallest.c_str(), largest.c_str(), largest.c_str()});
      OrtStatus* status = api.UpdateTensorRTProviderOptions(trt, keys.data(), values.data(), keys.size());
      if (status == nullptr) status = api.SessionOptionsAppendExecutionProvider_TensorRT_V2(options, trt);
      api.ReleaseTensorRTProviderOptions(trt);
      Ort::ThrowOnError(status);
      cuda(options);  // for the nodes TensorRT declines
    };
    auto attempt = [&](const char* name, auto add) -> std::optional<Ort::SessionOptions> {
      Ort::SessionOptions trial = base.Clone();
      try {
        add(trial);
        provider_ = name;
        return trial;
      } catch (const Ort::Exception& e) {
        if (provider != Provider::Auto) fail(std::string(name) + " is not available: " + e.what());
        notes_.push_back(std::string(name) + " not used: " + e.what());
        return std::nullopt;
      }
    };
    if (provider == Provider::TensorRt || provider == Provider::Auto)
      if (auto o = attempt("TensorrtExecutionProvider", tensorrt)) return std::move(*o);
    if (provider == Provider::Cuda || provider == Provider::Auto)
      if (auto o = attempt("CUDAExecutionProvider", cuda)) return std::move(*o);
    provider_ = "CPUExecutionProvider";
    return base.Clone();
  }

  // TensorRT's profile shape of the graph's input: "image:Bx3xSxS" or "image_u8:BxSxSx3".
  std::string profile_shape(int batch) const {
    const std::string s = std::to_string(info_.preprocess.image_size), b = std::to_string(batch);
    return info_.input == "image_u8" ? info_.input + ":" + b + "x" + s + "x" + s + "x3"
                                     : info_.input + ":" + b + "x3x" + s + "x" + s;
  }

  std::string metadata(const std::map<std::string, std::string>& md, const char* key, bool required = true) {
    const auto found = md.find(key);
    if (found == md.end()) {
      if (required) fail(std::string("metadata ") + key + " is missing");
      return "";
    }
    return found->second;
  }

  static std::array<float, 3> three_floats(const std::string& text, bool& ok) {
    std::array<float, 3> v{};
    std::istringstream in(text);
    std::string part;
    int n = 0;
    while (std::getline(in, part, ',')) {
      char* end = nullptr;
      const double d = std::strtod(part.c_str(), &end);
      if (n >= 3 || end == part.c_str() || *end != '\0') {
        ok = false;
        return v;
      }
      v[n++] = static_cast<float>(d);  // the spec holds f64; §1 computes in f32
    }
    ok = n == 3;
    return v;
  }

  void read_metadata(const std::map<std::string, std::string>& md) {
    const std::string format = metadata(md, "dlvp.format", false);
    if (format.empty()) fail("not a dlvp graph: no dlvp.format metadata (export it with `dlvp export`)");
    if (format != "dlvp-clip-onnx/1")
      fail("metadata dlvp.format is \"" + format + "\"; this example reads \"dlvp-clip-onnx/1\"");
    Preprocess& p = info_.preprocess;
    const std::string size = metadata(md, "dlvp.image_size");
    p.image_size = std::atoi(size.c_str());
    if (p.image_size <= 0) fail("metadata dlvp.image_size is \"" + size + "\", not a positive integer");
    bool ok_mean = true, ok_std = true;
    p.mean = three_floats(metadata(md, "dlvp.preprocess.mean"), ok_mean);
    p.std = three_floats(metadata(md, "dlvp.preprocess.std"), ok_std);
    if (!ok_mean || !ok_std) fail("metadata dlvp.preprocess.mean/std must be three comma-separated numbers");
    p.resize = metadata(md, "dlvp.preprocess.resize");
    info_.input = metadata(md, "dlvp.input", false);
    if (info_.input.empty()) info_.input = "image";
    const std::string range = metadata(md, "dlvp.int8.weight_range", false);
    info_.int8_full_range = metadata(md, "dlvp.precision", false) == "int8" && range != "reduced";
    read_thresholds(md);
  }

  // `dlvp.threshold.*`: all four decision keys, or none. A hand-edited or corrupted value that
  // could not decide is refused here, when the graph loads, rather than at the first part it
  // passes; the checks, their order and their words are the Rust runtime's (metadata.rs `read`),
  // so a graph `dlvp detect` refuses is refused here too, naming the same key.
  void read_thresholds(const std::map<std::string, std::string>& md) {
    if (md.find("dlvp.threshold.image") == md.end()) return;
    // The f32 thresholds are read as f32 (the nearest to the decimal the exporter wrote, which is
    // the f32 it calibrated), the others as f64.
    auto number = [&](const char* key, auto parse) {
      if (!md.count(key)) fail(std::string("metadata ") + key + " is missing beside dlvp.threshold.image");
      const std::string& text = md.at(key);
      const auto v = parse(text.c_str(), nullptr);
      if (!is_decimal(text) || !std::isfinite(v)) fail(std::string("metadata ") + key + " is not a number");
      return v;
    };
    auto f32 = [](const char* s, char** end) { return std::strtof(s, end); };
    auto f64 = [](const char* s, char** end) { return std::strtod(s, end); };
    Thresholds t;
    t.false_alarm = number("dlvp.threshold.false_alarm", f64);
    if (!(t.false_alarm > 0 && t.false_alarm < 1))
      fail("metadata dlvp.threshold.false_alarm is " + number_text(t.false_alarm) +
           "; expected a rate between 0 and 1 (exclusive)");
    const double images = number("dlvp.threshold.images", f64);
    if (images < 1 || images != std::floor(images) || images > 4294967295.0)
      fail("metadata dlvp.threshold.images is " + number_text(images) +
           "; expected a whole number of images, at least 1");
    t.images = static_cast<long>(images);
    auto threshold = [&](const char* key) {
      const float v = number(key, f32);
      if (const auto why = threshold_problem(v)) fail(std::string("metadata ") + key + ": " + *why);
      return v;
    };
    t.image = threshold("dlvp.threshold.image");
    t.pixel = threshold("dlvp.threshold.pixel");
    info_.thresholds = t;
  }

  void check_io() {
    const int s = info_.preprocess.image_size;
    if (session_.GetInputCount() != 1) fail("a dlvp graph has one input");
    Ort::AllocatorWithDefaultOptions allocator;
    const std::string name = session_.GetInputNameAllocated(0, allocator).get();
    if (name != info_.input) fail("the graph's input is `" + name + "`, but its metadata says `" + info_.input + "`");
    Ort::TypeInfo type = session_.GetInputTypeInfo(0);
    auto tensor = type.GetTensorTypeAndShapeInfo();
    const std::vector<std::int64_t> shape = tensor.GetShape();
    const bool u8 = info_.input == "image_u8";
    const std::vector<std::int64_t> want = u8 ? std::vector<std::int64_t>{-1, s, s, 3}
                                              : std::vector<std::int64_t>{-1, 3, s, s};
    bool fits = shape.size() == 4;
    for (std::size_t i = 1; fits && i < 4; ++i) fits = shape[i] == want[i];
    const auto elem = tensor.GetElementType();
    if (elem != (u8 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT))
      fail("input `" + name + "` has the wrong element type");
    if (!fits) {
      std::ostringstream m;
      m << "input `" << name << "` has shape [";
      for (std::size_t i = 0; i < shape.size(); ++i) m << (i ? ", " : "") << (shape[i] < 0 ? std::string("B") : std::to_string(shape[i]));
      m << "], but its metadata (image_size " << s << ") needs " << (u8 ? "[B, S, S, 3]" : "[B, 3, S, S]");
      fail(m.str());
    }
    bool have_topk = false;
    for (std::size_t i = 0; i < session_.GetOutputCount(); ++i) {
      if (std::string(session_.GetOutputNameAllocated(i, allocator).get()) != "topk_indices") continue;
      const auto topk_shape = session_.GetOutputTypeInfo(i).GetTensorTypeAndShapeInfo().GetShape();
      if (topk_shape.size() == 2 && topk_shape[1] > 0) info_.top_k = static_cast<int>(topk_shape[1]);
      have_topk = true;
    }
    if (!have_topk || info_.top_k <= 0) fail("output topk_indices [B, K] is missing or has no fixed K");
  }

  std::string path_;
  GpuOptions gpu_;
  std::shared_ptr<Runtime> runtime_;  // outlives the session
  Ort::Session session_{nullptr};
  ModelInfo info_;
  std::optional<float> threshold_;
  std::string provider_;
  std::vector<std::string> notes_;
};

}  // namespace dlvp
