// dlvp/tiling.hpp — tiled inference for high-resolution frames, as `dlvp detect --tile` does it
// (model-spec/README.md, "Tiled inference"; dlvp-runtime's tiling.rs): the frame scaled by
// `scale` (each side at least the model's S, Pillow-exact with dlvp/resize.hpp), cut into S×S
// tiles overlapping by `overlap` (evenly spread, the first at 0 and the last at the edge), scored
// in batches straight from the frame's memory (no copies), their maps blended with the separable
// window w(u) = max(sin²(π(u + ½)/S), 1e-3) into one map at the frame's size (resized back
// bilinearly, half-pixel centres, when the scale is not 1), the score the largest tile's.
// Header-only; the same arithmetic in the same order as the Rust runtime, so the two agree to
// ONNX Runtime's own run-to-run differences (tests/cpp_example.rs holds them within 1e-5).
#pragma once

#include <dlvp/detector.hpp>
#include <dlvp/resize.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

namespace dlvp {

struct TileOptions {
  float scale = 1.0f;     // in (0, 1]: 1, tiles at native resolution; 0.5, each covers 2S frame pixels
  float overlap = 0.25f;  // fraction of a tile its neighbours overlap, in [0, 0.9]
};

// One tile's result, placed in the frame's own pixels.
struct Tile {
  float x = 0, y = 0, side = 0;
  float score = 0;
  std::vector<std::int64_t> topk;
};

struct TiledDetection {
  float score = 0;  // the largest tile score
  int width = 0, height = 0;
  std::vector<float> map;  // width × height, row-major
  std::vector<Tile> tiles;
  std::optional<Verdict> verdict;  // at the detector's threshold, when it has one
};

// Tile starts along an axis of `len` ≥ `tile` pixels.
inline std::vector<int> tile_positions(int len, int tile, float overlap) {
  if (len <= tile) return {0};
  const int stride = std::max(1, static_cast<int>(std::floor(static_cast<double>(tile) * (1.0 - static_cast<double>(overlap)))));
  const int n = (len - tile + stride - 1) / stride + 1;
  std::vector<int> p(n);
  for (int i = 0; i < n; ++i)
    p[i] = static_cast<int>(std::round(static_cast<double>(i) * (len - tile) / static_cast<double>(n - 1)));
  return p;
}

// The blending window along one axis of a tile.
inline std::vector<float> tile_window(int tile) {
  std::vector<float> w(tile);
  for (int u = 0; u < tile; ++u) {
    const double s = std::sin(3.14159265358979323846 * (u + 0.5) / tile);
    w[u] = static_cast<float>(std::max(s * s, 1e-3));
  }
  return w;
}

// Bilinear resize of an h×w map to out_h×out_w with half-pixel centres, edge-clamped (as the
// runtime's resize_map).
inline std::vector<float> resize_map(const std::vector<float>& map, int w, int h, int out_w, int out_h) {
  auto taps = [](int out, int in, int len) {
    std::vector<std::pair<std::pair<int, int>, float>> t(len);
    for (int i = 0; i < len; ++i) {
      const float x = std::max((static_cast<float>(i) + 0.5f) * static_cast<float>(in) / static_cast<float>(out) - 0.5f, 0.0f);
      const int x0 = std::min(static_cast<int>(std::floor(x)), in - 1);
      const int x1 = std::min(x0 + 1, in - 1);
      t[i] = {{x0, x1}, x - static_cast<float>(x0)};
    }
    return t;
  };
  const auto cols = taps(out_w, w, out_w), rows = taps(out_h, h, out_h);
  std::vector<float> out(static_cast<std::size_t>(out_w) * out_h);
  for (int y = 0; y < out_h; ++y) {
    const auto [ry, fy] = rows[y];
    for (int x = 0; x < out_w; ++x) {
      const auto [cx, fx] = cols[x];
      const float* top = map.data() + static_cast<std::size_t>(ry.first) * w;
      const float* bottom = map.data() + static_cast<std::size_t>(ry.second) * w;
      const float t = top[cx.first] * (1.0f - fx) + top[cx.second] * fx;
      const float b = bottom[cx.first] * (1.0f - fx) + bottom[cx.second] * fx;
      out[static_cast<std::size_t>(y) * out_w + x] = t * (1.0f - fy) + b * fy;
    }
  }
  return out;
}

// Scores `frame` tile by tile, `batch` tiles per run. Throws dlvp::Error as Detector::detect does.
inline TiledDetection detect_tiled(Detector& detector, const ImageView& frame, const TileOptions& options,
                                   std::size_t batch = 8) {
  if (!(options.scale > 0.0f && options.scale <= 1.0f) || !(options.overlap >= 0.0f && options.overlap <= 0.9f))
    throw Error("tile scale must be in (0, 1] and overlap in [0, 0.9]");
  const int s = detector.info().preprocess.image_size;
  const int n = pixel_bytes(frame.channels);
  auto side = [&](int len) {
    return std::max(static_cast<int>(std::llround(static_cast<double>(len) * static_cast<double>(options.scale))), s);
  };
  const int sw = side(frame.width), sh = side(frame.height);
  std::vector<std::uint8_t> scaled;
  const std::uint8_t* base = frame.data;
  std::size_t stride = frame.stride;
  if (sw != frame.width || sh != frame.height) {
    scaled = resize8(frame.data, frame.width, frame.height, frame.stride, n, sw, sh,
                     filter_from_name(detector.info().preprocess.resize));
    base = scaled.data();
    stride = static_cast<std::size_t>(sw) * n;
  }
  const std::vector<int> xs = tile_positions(sw, s, options.overlap), ys = tile_positions(sh, s, options.overlap);
  const std::vector<float> window = tile_window(s);
  std::vector<std::pair<int, int>> corners;
  for (int y : ys)
    for (int x : xs) corners.push_back({x, y});
  std::vector<float> numerator(static_cast<std::size_t>(sw) * sh, 0.0f);
  TiledDetection result;
  const float fx = static_cast<float>(frame.width) / sw, fy = static_cast<float>(frame.height) / sh;
  for (std::size_t at = 0; at < corners.size(); at += std::max<std::size_t>(batch, 1)) {
    const std::size_t end = std::min(corners.size(), at + std::max<std::size_t>(batch, 1));
    std::vector<ImageView> views;
    for (std::size_t i = at; i < end; ++i)
      views.push_back({base + static_cast<std::size_t>(corners[i].second) * stride + static_cast<std::size_t>(corners[i].first) * n,
                       s, s, stride, frame.channels});
    const std::vector<Detection> found = detector.detect(views);
    for (std::size_t i = at; i < end; ++i) {
      const auto [x, y] = corners[i];
      const Detection& d = found[i - at];
      for (int v = 0; v < s; ++v) {
        const float wy = window[v];
        float* row = numerator.data() + static_cast<std::size_t>(y + v) * sw + x;
        const float* m = d.map.data() + static_cast<std::size_t>(v) * s;
        for (int u = 0; u < s; ++u) row[u] += wy * window[u] * m[u];
      }
      result.tiles.push_back({static_cast<float>(x) * fx, static_cast<float>(y) * fy,
                              static_cast<float>(s) * std::max(fx, fy), d.score, d.topk});
    }
  }
  auto sums = [&](int len, const std::vector<int>& starts) {
    std::vector<float> total(len, 0.0f);
    for (int p : starts)
      for (int u = 0; u < s; ++u) total[p + u] += window[u];
    return total;
  };
  const std::vector<float> dx = sums(sw, xs), dy = sums(sh, ys);
  for (int y = 0; y < sh; ++y)
    for (int x = 0; x < sw; ++x) numerator[static_cast<std::size_t>(y) * sw + x] /= dx[x] * dy[y];
  result.width = frame.width;
  result.height = frame.height;
  result.map = (sw == frame.width && sh == frame.height)
                   ? std::move(numerator)
                   : resize_map(numerator, sw, sh, frame.width, frame.height);
  // The largest tile score; a tile that scored NaN makes the frame's score NaN (and so NG):
  // std::max would keep the other tiles' number and a broken tile would pass unseen.
  result.score = -std::numeric_limits<float>::max();
  for (const Tile& t : result.tiles) result.score = std::isnan(t.score) ? t.score : std::max(result.score, t.score);
  if (const auto at = detector.threshold()) result.verdict = decide(result.score, *at);
  return result;
}

}  // namespace dlvp
