// dlvp_stream — score the frames of a GStreamer pipeline (a camera, a file, a test source) with a
// `dlvp export` graph: appsink frames → dlvp::resize8 (Pillow-exact) → dlvp::Detector.
//
//   dlvp_stream MODEL.onnx [--source "GST-LAUNCH SOURCE"] [--format RGB|BGR|RGBA|BGRA|RGBx|BGRx|GRAY8]
//               [--frames N] [--batch N] [--drop] [--json] [--dump DIR] [--verbose]
//               [--provider cpu|cuda|tensorrt|auto] [--trt-cache DIR] [--trt-fp16] [--allow-tf32]
//               [--threads N] [--threshold T]
//
// The source (default `videotestsrc num-buffers=8`) is completed to
//   SOURCE ! videoconvert ! video/x-raw,format=FORMAT ! appsink name=dlvp sync=false ...
// and every sample pulled from the appsink is mapped with its GstVideoInfo (rows are
// GST_VIDEO_FRAME_PLANE_STRIDE bytes apart: GStreamer pads RGB rows to 4 bytes), resized to the
// model's S×S with dlvp/resize.hpp — Pillow's filter bit for bit, the bytes `dlvp detect` would
// feed the graph, which videoscale or nvvidconv do not give — and queued; every --batch frames
// (and the partial batch at end of stream, --frames N, or Ctrl-C) run as one batch. One line per
// frame on stdout (--json: {"frame", "pts_ns", "score", "topk"}), ending in OK or NG ("decision",
// "threshold") when the graph stores a decision threshold (`dlvp threshold`) or --threshold T
// gives one (T in [0, 1); any other is bad usage). --dump DIR writes, per frame,
// frame-NNNNNN.ppm (the S×S RGB pixels the detector saw) and frame-NNNNNN-source.ppm (the frame as
// the appsink delivered it, RGB), both binary PPM, written atomically.
//
// Exit 0; 1 on any error (the model, the pipeline description, an ERROR message on the pipeline's
// bus), printed as `error: ...`; 2 on bad usage.
#include <dlvp/detector.hpp>
#include <dlvp/resize.hpp>

#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <gst/video/video.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace fs = std::filesystem;

static int usage() {
  std::cerr << "usage: dlvp_stream MODEL.onnx [--source \"GST-LAUNCH SOURCE\"]"
               " [--format RGB|BGR|RGBA|BGRA|RGBx|BGRx|GRAY8] [--frames N] [--batch N] [--drop] [--json]"
               " [--dump DIR] [--verbose] [--provider cpu|cuda|tensorrt|auto] [--trt-cache DIR] [--trt-fp16]"
               " [--allow-tf32] [--threads N] [--threshold T]\n";
  return 2;
}

// A score in the JSON lines: NaN (what a broken graph returns) is no JSON number, so it is written
// as null, as `dlvp detect --json` writes it; the decision beside it is NG.
static std::string json_number(float v) {
  if (!std::isfinite(v)) return "null";
  char text[32];
  std::snprintf(text, sizeof text, "%.9g", v);
  return text;
}

// Ctrl-C / SIGTERM: stop pulling, score the frames already queued, and exit 0.
static volatile std::sig_atomic_t stop_requested = 0;
static void on_signal(int) { stop_requested = 1; }

// A positive (or, with allow_zero, non-negative) integer option value; nullopt on anything else.
static std::optional<long> parse_count(const char* text, bool allow_zero) {
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < (allow_zero ? 0 : 1) || v > 1000000000L) return std::nullopt;
  return v;
}

// The appsink formats this example takes and the dlvp::Channels each is handed over as (an `x`
// byte is padding, dropped like alpha).
static std::optional<dlvp::Channels> channels_of(const std::string& format) {
  if (format == "RGB") return dlvp::Channels::RGB;
  if (format == "BGR") return dlvp::Channels::BGR;
  if (format == "RGBA" || format == "RGBx") return dlvp::Channels::RGBA;
  if (format == "BGRA" || format == "BGRx") return dlvp::Channels::BGRA;
  if (format == "GRAY8") return dlvp::Channels::Gray;
  return std::nullopt;
}

// Written beside its destination and renamed into place, so a reader never sees half a file.
static void write_atomically(const fs::path& path, const std::string& bytes) {
  const fs::path tmp = path.parent_path() / ("." + path.filename().string() + ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw dlvp::Error(path.string() + ": cannot write");
  }
  fs::rename(tmp, path);
}

// A frame of `channels` layout as a binary RGB PPM (gray replicated, alpha and padding dropped).
static std::string ppm(const std::uint8_t* data, int width, int height, std::size_t stride, dlvp::Channels channels) {
  const int n = dlvp::pixel_bytes(channels);
  int r = 0, g = 1, b = 2;
  if (channels == dlvp::Channels::BGR || channels == dlvp::Channels::BGRA) r = 2, b = 0;
  if (channels == dlvp::Channels::Gray) r = g = b = 0;
  std::string out = "P6\n" + std::to_string(width) + " " + std::to_string(height) + "\n255\n";
  const std::size_t header = out.size();
  out.resize(header + static_cast<std::size_t>(width) * height * 3);
  char* px = &out[header];
  for (int y = 0; y < height; ++y) {
    const std::uint8_t* row = data + y * stride;
    for (int x = 0; x < width; ++x) {
      *px++ = static_cast<char>(row[x * n + r]);
      *px++ = static_cast<char>(row[x * n + g]);
      *px++ = static_cast<char>(row[x * n + b]);
    }
  }
  return out;
}

// The first ERROR message waiting on the bus, as "ELEMENT: MESSAGE" (and GStreamer's debug
// detail when verbose); empty when there is none.
static std::string bus_error(GstBus* bus, bool verbose) {
  GstMessage* msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  if (msg == nullptr) return "";
  GError* err = nullptr;
  gchar* debug = nullptr;
  gst_message_parse_error(msg, &err, &debug);
  std::string text = std::string(GST_OBJECT_NAME(msg->src)) + ": " + (err ? err->message : "unknown error");
  if (verbose && debug != nullptr) text += "\n  debug: " + std::string(debug);
  g_clear_error(&err);
  g_free(debug);
  gst_message_unref(msg);
  return text;
}

// The pipeline, set to NULL and released however main() leaves.
struct Pipeline {
  GstElement* element = nullptr;
  GstElement* sink = nullptr;
  GstBus* bus = nullptr;
  ~Pipeline() {
    if (element != nullptr) gst_element_set_state(element, GST_STATE_NULL);
    if (bus != nullptr) gst_object_unref(bus);
    if (sink != nullptr) gst_object_unref(sink);
    if (element != nullptr) gst_object_unref(element);
  }
};

struct Frame {
  long index;
  GstClockTime pts;
  std::vector<std::uint8_t> pixels;  // S×S, packed, in the appsink's layout
};

int main(int argc, char** argv) {
  std::string model, source = "videotestsrc num-buffers=8", format = "RGB", dump_dir, provider_name = "cpu";
  long frames_limit = 0, batch = 4;
  bool json = false, drop = false, verbose = false;
  int threads = 0;
  std::optional<float> threshold;
  dlvp::GpuOptions gpu;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--source" && has_value) source = argv[++i];
    else if (a == "--format" && has_value) format = argv[++i];
    else if (a == "--frames" && has_value) {
      const auto v = parse_count(argv[++i], true);
      if (!v) return usage();
      frames_limit = *v;
    } else if (a == "--batch" && has_value) {
      const auto v = parse_count(argv[++i], false);
      if (!v || *v > 1024) return usage();
      batch = *v;
    } else if (a == "--threads" && has_value) {
      const auto v = parse_count(argv[++i], true);
      if (!v) return usage();
      threads = static_cast<int>(*v);
    } else if (a == "--drop") drop = true;
    else if (a == "--json") json = true;
    else if (a == "--verbose") verbose = true;
    else if (a == "--dump" && has_value) dump_dir = argv[++i];
    else if (a == "--provider" && has_value) provider_name = argv[++i];
    else if (a == "--trt-cache" && has_value) gpu.cache_dir = argv[++i];
    else if (a == "--trt-fp16") gpu.fp16 = true;
    else if (a == "--allow-tf32") gpu.allow_tf32 = true;
    else if (a == "--threshold" && has_value) {
      // Refused before any model loads: a NaN, infinite or out-of-range threshold would decide
      // every part alike, whatever it shows.
      try {
        threshold = dlvp::parse_threshold(argv[++i]);
      } catch (const std::invalid_argument& e) {
        std::cerr << "error: --threshold: " << e.what() << "\n";
        return 2;
      }
    } else if (a.rfind("--", 0) == 0 || !model.empty()) return usage();
    else model = a;
  }
  if (model.empty()) return usage();
  const std::optional<dlvp::Channels> layout = channels_of(format);
  if (!layout) return usage();
  const dlvp::Channels channels = *layout;
  const int pixel = dlvp::pixel_bytes(channels);
  dlvp::Provider provider;
  if (provider_name == "cpu") provider = dlvp::Provider::Cpu;
  else if (provider_name == "cuda") provider = dlvp::Provider::Cuda;
  else if (provider_name == "tensorrt") provider = dlvp::Provider::TensorRt;
  else if (provider_name == "auto") provider = dlvp::Provider::Auto;
  else return usage();
  // TensorRT's optimisation profile spans exactly the batches this program forms.
  gpu.max_batch = static_cast<int>(batch);

  try {
    // The model first: a bad one fails before any pipeline starts.
    dlvp::Detector detector(model, provider, gpu, std::make_shared<dlvp::Runtime>(threads));
    if (threshold) detector.set_threshold(*threshold);
    for (const std::string& note : detector.notes()) std::cerr << "note: " << note << "\n";
    const int s = detector.info().preprocess.image_size;
    const dlvp::Filter filter = dlvp::filter_from_name(detector.info().preprocess.resize);
    std::cerr << "provider: " << detector.provider() << ", input `" << detector.info().input << "` " << s << "x"
              << s << "\n";
    if (!dump_dir.empty()) fs::create_directories(dump_dir);

    gst_init(nullptr, nullptr);
    // Without --drop the appsink holds up to two batches and then blocks the pipeline (every frame
    // is scored; a live source drops frames upstream when scoring falls behind). With --drop it
    // keeps only the newest --batch frames: the lowest latency for a live camera.
    const std::string description = source + " ! videoconvert ! video/x-raw,format=" + format +
                                     " ! appsink name=dlvp sync=false max-buffers=" +
                                     std::to_string(drop ? batch : 2 * batch) + " drop=" + (drop ? "true" : "false");
    if (verbose) std::cerr << "pipeline: " << description << "\n";
    Pipeline pipeline;
    GError* parse_error = nullptr;
    pipeline.element = gst_parse_launch_full(description.c_str(), nullptr, GST_PARSE_FLAG_FATAL_ERRORS, &parse_error);
    if (pipeline.element == nullptr) {
      const std::string why = parse_error ? parse_error->message : "cannot build the pipeline";
      g_clear_error(&parse_error);
      throw dlvp::Error("--source \"" + source + "\": " + why);
    }
    pipeline.sink = gst_bin_get_by_name(GST_BIN(pipeline.element), "dlvp");
    if (pipeline.sink == nullptr) throw dlvp::Error("--source \"" + source + "\": the pipeline has no appsink `dlvp`");
    pipeline.bus = gst_element_get_bus(pipeline.element);
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    if (gst_element_set_state(pipeline.element, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
      const std::string why = bus_error(pipeline.bus, verbose);
      throw dlvp::Error("pipeline: " + (why.empty() ? std::string("cannot start") : why));
    }

    using clock = std::chrono::steady_clock;
    double resize_ms = 0, detect_ms = 0;
    int source_width = 0, source_height = 0;
    long pulled = 0;
    std::vector<Frame> pending;
    auto run_batch = [&]() {
      if (pending.empty()) return;
      std::vector<dlvp::ImageView> views;
      for (const Frame& f : pending)
        views.push_back({f.pixels.data(), s, s, static_cast<std::size_t>(s) * pixel, channels});
      const auto t0 = clock::now();
      const std::vector<dlvp::Detection> results = detector.detect(views);
      detect_ms += std::chrono::duration<double, std::milli>(clock::now() - t0).count();
      for (std::size_t i = 0; i < pending.size(); ++i) {
        const Frame& f = pending[i];
        const dlvp::Detection& r = results[i];
        const bool has_pts = GST_CLOCK_TIME_IS_VALID(f.pts);
        if (json) {
          std::printf("{\"frame\":%ld,\"pts_ns\":", f.index);
          if (has_pts) std::printf("%llu", static_cast<unsigned long long>(f.pts));
          else std::printf("null");
          std::printf(",\"score\":%s,\"topk\":[", json_number(r.score).c_str());
          for (std::size_t t = 0; t < r.topk.size(); ++t)
            std::printf("%s%lld", t ? "," : "", static_cast<long long>(r.topk[t]));
          std::printf("]");
          if (r.verdict)
            std::printf(",\"decision\":\"%s\",\"threshold\":%.9g", dlvp::verdict_name(*r.verdict), *detector.threshold());
          std::printf("}\n");
        } else {
          const std::string decision = r.verdict ? std::string("  ") + dlvp::verdict_name(*r.verdict) : "";
          if (has_pts)
            std::printf("frame %ld  pts %.3f s  score %.4f%s\n", f.index, static_cast<double>(f.pts) / 1e9, r.score,
                        decision.c_str());
          else
            std::printf("frame %ld  score %.4f%s\n", f.index, r.score, decision.c_str());
        }
      }
      std::fflush(stdout);  // a line per frame as soon as it is scored, also into a pipe
      pending.clear();
    };

    while (!stop_requested && (frames_limit == 0 || pulled < frames_limit)) {
      const std::string error = bus_error(pipeline.bus, verbose);
      if (!error.empty()) throw dlvp::Error("pipeline: " + error);
      // A short timeout, so that a pipeline that fails (and so never reaches end of stream) is
      // noticed on the bus above.
      GstSample* sample = gst_app_sink_try_pull_sample(GST_APP_SINK(pipeline.sink), 100 * GST_MSECOND);
      if (sample == nullptr) {
        if (gst_app_sink_is_eos(GST_APP_SINK(pipeline.sink))) break;
        continue;
      }
      std::unique_ptr<GstSample, decltype(&gst_sample_unref)> held(sample, gst_sample_unref);
      GstVideoInfo info;
      GstBuffer* buffer = gst_sample_get_buffer(sample);
      if (buffer == nullptr || !gst_video_info_from_caps(&info, gst_sample_get_caps(sample)))
        throw dlvp::Error("pipeline: a sample without video caps or buffer");
      // Maps plane 0 with the stride and offset of the buffer's GstVideoMeta when it carries one,
      // else of the caps (GST_VIDEO_INFO_PLANE_STRIDE).
      GstVideoFrame frame;
      if (!gst_video_frame_map(&frame, &info, buffer, GST_MAP_READ))
        throw dlvp::Error("pipeline: cannot map a video frame");
      const int w = GST_VIDEO_FRAME_WIDTH(&frame), h = GST_VIDEO_FRAME_HEIGHT(&frame);
      const std::size_t stride = static_cast<std::size_t>(GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0));
      const auto* data = static_cast<const std::uint8_t*>(GST_VIDEO_FRAME_PLANE_DATA(&frame, 0));
      Frame f{pulled, GST_BUFFER_PTS(buffer), {}};
      try {
        if (verbose && (w != source_width || h != source_height))
          std::cerr << "frames: " << w << "x" << h << " " << format << ", rows " << stride << " bytes apart\n";
        source_width = w, source_height = h;
        const auto t0 = clock::now();
        if (w == s && h == s) {
          f.pixels.resize(static_cast<std::size_t>(s) * s * pixel);
          for (int y = 0; y < s; ++y)
            std::copy(data + y * stride, data + y * stride + static_cast<std::size_t>(s) * pixel,
                      f.pixels.begin() + static_cast<std::ptrdiff_t>(y) * s * pixel);
        } else {
          f.pixels = dlvp::resize8(data, w, h, stride, pixel, s, s, filter);
        }
        resize_ms += std::chrono::duration<double, std::milli>(clock::now() - t0).count();
        if (!dump_dir.empty()) {
          char name[32];
          std::snprintf(name, sizeof name, "frame-%06ld", pulled);
          const fs::path stem = fs::path(dump_dir) / name;
          write_atomically(stem.string() + "-source.ppm", ppm(data, w, h, stride, channels));
          write_atomically(stem.string() + ".ppm",
                           ppm(f.pixels.data(), s, s, static_cast<std::size_t>(s) * pixel, channels));
        }
      } catch (...) {
        gst_video_frame_unmap(&frame);
        throw;
      }
      gst_video_frame_unmap(&frame);
      held.reset();  // the buffer goes back to the pipeline before the model runs
      pending.push_back(std::move(f));
      ++pulled;
      if (static_cast<long>(pending.size()) == batch) run_batch();
    }
    // The stream ended (or --frames / a signal stopped it) with a partial batch: score it too.
    const std::string error = bus_error(pipeline.bus, verbose);
    if (!error.empty()) throw dlvp::Error("pipeline: " + error);
    run_batch();
    if (verbose && pulled > 0)
      std::fprintf(stderr, "%ld frames: resize %.2f ms/frame (%dx%d to %dx%d), detect %.2f ms/frame (batches of %ld)\n",
                   pulled, resize_ms / pulled, source_width, source_height, s, s, detect_ms / pulled, batch);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
