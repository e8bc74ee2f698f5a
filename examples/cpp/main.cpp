// dlvp_detect — score images with a `dlvp export` graph from C++ (ONNX Runtime + OpenCV).
//
//   dlvp_detect MODEL.onnx IMAGE... [--out DIR] [--provider cpu|cuda|tensorrt|auto] [--batch N] [--json]
//               [--as bgr|bgra|gray] [--trt-cache DIR] [--trt-fp16] [--trt-int8] [--allow-tf32]
//               [--max-batch N] [--threads N] [--detectors N] [--threshold T] [--profile]
//               [--tile [--tile-scale S] [--tile-overlap F]]
//
// Loads each image with OpenCV (BGR, as C++ pipelines hold them), resizes it to the model's
// S×S if it is not already that size with dlvp/resize.hpp (Pillow's filter, as the model's
// metadata names it: the same bytes `dlvp detect` feeds the graph),
// runs batches, prints one line per image and, with --out, writes NAME.map.png (16-bit, S×S)
// and NAME.map.f32 (the raw float32 map, row-major). --detectors N loads the model N times on
// one dlvp::Runtime (one shared thread pool of --threads) and runs the batches from N threads
// at once: the output is the same. A graph calibrated by `dlvp threshold` decides OK/NG at its
// stored threshold (--threshold T decides at T instead; T must lie in [0, 1), else exit 2): the
// line ends in OK or NG and the JSON has "decision" and "threshold", as `dlvp detect` prints them
// (a NaN score is NG, written as null). --profile prints, at the end, the
// milliseconds per image of each stage (decode, resize, detect, write) to stderr, as
// `dlvp detect --profile` does for its own. --tile scores each image in overlapping tiles at
// native resolution (dlvp/tiling.hpp, as `dlvp detect --tile`): the map (and --out's files) at
// the image's size, the score the largest tile's, "tiles" the number of tiles in the JSON. Exit 0, or 1 on any error, 2 on
// bad usage.
#include <dlvp/detector.hpp>
#include <dlvp/resize.hpp>
#include <dlvp/tiling.hpp>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;

static int usage() {
  std::cerr << "usage: dlvp_detect MODEL.onnx IMAGE... [--out DIR] [--provider cpu|cuda|tensorrt|auto] [--batch N] [--json]"
               " [--as bgr|bgra|gray] [--trt-cache DIR] [--trt-fp16] [--trt-int8] [--allow-tf32]"
               " [--max-batch N] [--threads N] [--detectors N] [--threshold T] [--profile]"
               " [--tile [--tile-scale S] [--tile-overlap F]]\n";
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

// Written beside its destination and renamed into place, so a crash never leaves half a file.
static void write_atomically(const fs::path& path, const void* data, std::size_t bytes) {
  const fs::path tmp = path.parent_path() / ("." + path.filename().string() + ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
    if (!out) throw dlvp::Error(path.string() + ": cannot write");
  }
  fs::rename(tmp, path);
}

int main(int argc, char** argv) {
  std::vector<std::string> positional;
  std::string out_dir, provider_name = "cpu", layout = "bgr";
  std::size_t batch = 4;
  int threads = 0, detectors = 1;
  bool json = false, profile = false;
  std::optional<dlvp::TileOptions> tiling;
  dlvp::TileOptions tile_options;
  std::optional<float> threshold;
  dlvp::GpuOptions gpu;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--out" && i + 1 < argc) out_dir = argv[++i];
    else if (a == "--provider" && i + 1 < argc) provider_name = argv[++i];
    else if (a == "--batch" && i + 1 < argc) batch = std::max(1, std::atoi(argv[++i]));
    else if (a == "--json") json = true;
    else if (a == "--profile") profile = true;
    else if (a == "--tile") tiling = tile_options;
    else if ((a == "--tile-scale" || a == "--tile-overlap") && i + 1 < argc) {
      char* end = nullptr;
      const char* text = argv[++i];
      const float v = std::strtof(text, &end);
      if (end == text || *end != '\0') return usage();
      (a == "--tile-scale" ? tile_options.scale : tile_options.overlap) = v;
    }
    else if (a == "--as" && i + 1 < argc) layout = argv[++i];
    else if (a == "--trt-cache" && i + 1 < argc) gpu.cache_dir = argv[++i];
    else if (a == "--trt-fp16") gpu.fp16 = true;
    else if (a == "--trt-int8") gpu.int8 = true;
    else if (a == "--allow-tf32") gpu.allow_tf32 = true;
    else if (a == "--max-batch" && i + 1 < argc) gpu.max_batch = std::max(1, std::atoi(argv[++i]));
    else if (a == "--threads" && i + 1 < argc) threads = std::max(0, std::atoi(argv[++i]));
    else if (a == "--detectors" && i + 1 < argc) detectors = std::max(1, std::atoi(argv[++i]));
    else if (a == "--threshold" && i + 1 < argc) {
      // Refused before any model loads: a NaN, infinite or out-of-range threshold would decide
      // every part alike, whatever it shows.
      try {
        threshold = dlvp::parse_threshold(argv[++i]);
      } catch (const std::invalid_argument& e) {
        std::cerr << "error: --threshold: " << e.what() << "\n";
        return 2;
      }
    }
    else if (a.rfind("--", 0) == 0) return usage();
    else positional.push_back(a);
  }
  if (positional.size() < 2) return usage();
  if (tiling) tiling = tile_options;  // the --tile-* values, whichever order they came in
  // How frames reach the detector: OpenCV's BGR (default), BGRA, or mono8 as a camera gives it.
  dlvp::Channels channels = dlvp::Channels::BGR;
  if (layout == "bgra") channels = dlvp::Channels::BGRA;
  else if (layout == "gray") channels = dlvp::Channels::Gray;
  else if (layout != "bgr") return usage();
  const int pixel = dlvp::pixel_bytes(channels);
  dlvp::Provider provider;
  if (provider_name == "cpu") provider = dlvp::Provider::Cpu;
  else if (provider_name == "cuda") provider = dlvp::Provider::Cuda;
  else if (provider_name == "tensorrt") provider = dlvp::Provider::TensorRt;
  else if (provider_name == "auto") provider = dlvp::Provider::Auto;
  else return usage();

  try {
    auto runtime = std::make_shared<dlvp::Runtime>(threads);
    std::vector<std::unique_ptr<dlvp::Detector>> pool;
    for (int d = 0; d < detectors; ++d) {
      pool.push_back(std::make_unique<dlvp::Detector>(positional[0], provider, gpu, runtime));
      if (threshold) pool.back()->set_threshold(*threshold);
    }
    const dlvp::Detector& detector = *pool[0];
    for (const std::string& note : detector.notes()) std::cerr << "note: " << note << "\n";
    const dlvp::ModelInfo& info = detector.info();
    const int s = info.preprocess.image_size;
    std::cerr << "provider: " << detector.provider() << ", input `" << info.input << "` " << s << "x" << s << "\n";
    if (!out_dir.empty()) fs::create_directories(out_dir);
    const dlvp::Filter filter = dlvp::filter_from_name(info.preprocess.resize);

    const std::vector<std::string> names(positional.begin() + 1, positional.end());
    using Clock = std::chrono::steady_clock;
    auto ms_since = [](Clock::time_point t0) {
      return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    };
    double decode_ms = 0, resize_ms = 0, detect_ms = 0, write_ms = 0;
    const auto started = Clock::now();
    std::vector<cv::Mat> images;
    for (const std::string& name : names) {
      auto t0 = Clock::now();
      cv::Mat img = cv::imread(name, channels == dlvp::Channels::Gray ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR);
      decode_ms += ms_since(t0);
      if (img.empty()) throw dlvp::Error(name + ": cannot read image");
      if (channels == dlvp::Channels::BGRA) cv::cvtColor(img, img, cv::COLOR_BGR2BGRA);
      if (!tiling && (img.cols != s || img.rows != s)) {
        // Pillow-exact, as `dlvp detect` resizes (OpenCV's INTER_CUBIC is another kernel).
        t0 = Clock::now();
        std::vector<std::uint8_t> px = dlvp::resize8(img.data, img.cols, img.rows, img.step[0], pixel, s, s, filter);
        img = cv::Mat(s, s, CV_8UC(pixel), px.data()).clone();
        resize_ms += ms_since(t0);
      }
      images.push_back(img);
    }

    if (tiling) {
      // One image at a time, its tiles in batches of --batch, on the first detector.
      for (std::size_t i = 0; i < names.size(); ++i) {
        const cv::Mat& img = images[i];
        auto t0 = Clock::now();
        const dlvp::TiledDetection r =
            dlvp::detect_tiled(*pool[0], {img.data, img.cols, img.rows, img.step[0], channels}, *tiling, batch);
        detect_ms += ms_since(t0);
        const dlvp::Tile* best = &r.tiles[0];
        for (const dlvp::Tile& t : r.tiles)
          if (t.score > best->score) best = &t;
        if (json) {
          std::printf("{\"image\":\"%s\",\"score\":%s,\"topk\":[", names[i].c_str(), json_number(r.score).c_str());
          for (std::size_t t = 0; t < best->topk.size(); ++t)
            std::printf("%s%lld", t ? "," : "", static_cast<long long>(best->topk[t]));
          std::printf("],\"tiles\":%zu", r.tiles.size());
          if (r.verdict)
            std::printf(",\"decision\":\"%s\",\"threshold\":%.9g", dlvp::verdict_name(*r.verdict), *detector.threshold());
          std::printf("}\n");
        } else {
          std::printf("%s  score %.4f  (%zu tiles)%s%s\n", names[i].c_str(), r.score, r.tiles.size(),
                      r.verdict ? "  " : "", r.verdict ? dlvp::verdict_name(*r.verdict) : "");
        }
        if (!out_dir.empty()) {
          t0 = Clock::now();
          const fs::path stem = fs::path(out_dir) / fs::path(names[i]).stem();
          write_atomically(stem.string() + ".map.f32", r.map.data(), r.map.size() * sizeof(float));
          write_ms += ms_since(t0);
        }
      }
      if (profile)
        std::fprintf(stderr, "profile: %zu images, ms per image: decode %.2f, detect (tiled) %.2f, write %.2f\n",
                     names.size(), decode_ms / names.size(), detect_ms / names.size(), write_ms / names.size());
      return 0;
    }

    // Batch b runs on detector b % N, from thread b % N; each thread writes only its own slots.
    const std::size_t batches = (names.size() + batch - 1) / batch;
    std::vector<std::vector<dlvp::Detection>> results(batches);
    std::vector<std::string> errors(pool.size());
    auto work = [&](std::size_t worker) {
      try {
        for (std::size_t b = worker; b < batches; b += pool.size()) {
          std::vector<dlvp::ImageView> views;
          for (std::size_t i = b * batch; i < std::min(names.size(), (b + 1) * batch); ++i)
            views.push_back({images[i].data, images[i].cols, images[i].rows, images[i].step[0], channels});
          results[b] = pool[worker]->detect(views);
        }
      } catch (const std::exception& e) {
        errors[worker] = e.what();
      }
    };
    auto t0 = Clock::now();
    std::vector<std::thread> workers;
    for (std::size_t w = 1; w < pool.size(); ++w) workers.emplace_back(work, w);
    work(0);
    for (std::thread& t : workers) t.join();
    detect_ms = ms_since(t0);
    for (const std::string& e : errors)
      if (!e.empty()) throw dlvp::Error(e);

    for (std::size_t i = 0; i < names.size(); ++i) {
      const std::string& name = names[i];
      const dlvp::Detection& r = results[i / batch][i % batch];
      if (json) {
        std::printf("{\"image\":\"%s\",\"score\":%s,\"topk\":[", name.c_str(), json_number(r.score).c_str());
        for (std::size_t t = 0; t < r.topk.size(); ++t) std::printf("%s%lld", t ? "," : "", static_cast<long long>(r.topk[t]));
        std::printf("]");
        if (r.verdict)
          std::printf(",\"decision\":\"%s\",\"threshold\":%.9g", dlvp::verdict_name(*r.verdict), *detector.threshold());
        std::printf("}\n");
      } else {
        std::printf("%s  score %.4f%s%s\n", name.c_str(), r.score, r.verdict ? "  " : "",
                    r.verdict ? dlvp::verdict_name(*r.verdict) : "");
      }
      if (!out_dir.empty()) {
        t0 = Clock::now();
        const fs::path stem = fs::path(out_dir) / fs::path(name).stem();
        write_atomically(stem.string() + ".map.f32", r.map.data(), r.map.size() * sizeof(float));
        cv::Mat map16(s, s, CV_16UC1);
        for (int y = 0; y < s; ++y)
          for (int x = 0; x < s; ++x)
            map16.at<std::uint16_t>(y, x) = static_cast<std::uint16_t>(
                std::lround(std::min(1.0f, std::max(0.0f, r.map[y * s + x])) * 65535.0f));
        std::vector<unsigned char> png;
        cv::imencode(".png", map16, png);
        write_atomically(stem.string() + ".map.png", png.data(), png.size());
        write_ms += ms_since(t0);
      }
    }
    if (profile) {
      // One thread per stage, one stage after another: the sum is the wall time.
      const double n = static_cast<double>(names.size()), wall = ms_since(started);
      std::fprintf(stderr,
                   "profile: %zu images in %.2f s, %.1f images/s; ms per image: decode %.2f, resize %.2f, "
                   "detect %.2f, write %.2f (batches of %zu, %zu detector(s))\n",
                   names.size(), wall / 1000, n * 1000 / wall, decode_ms / n, resize_ms / n, detect_ms / n,
                   write_ms / n, batch, pool.size());
    }
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
