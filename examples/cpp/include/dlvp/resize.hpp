// dlvp/resize.hpp — resize 8-bit images exactly as Pillow's Image.resize does (BICUBIC,
// BILINEAR), which is how `dlvp detect` preprocesses (model-spec/README.md §1). Header-only,
// no dependencies; the same algorithm as dlvp-runtime's preprocess.rs:
//   - per output sample, a window centred on (i + 0.5)·scale with support r·max(scale, 1)
//     (r = 2 bicubic with a = −0.5, 1 bilinear), weights normalised in double precision and
//     rounded to 22-bit fixed point (Pillow's Resample.c);
//   - two separable passes, each rounded and clipped to 8 bits; the vertical pass first when
//     it shrinks more than the horizontal one (as Pillow 13 orders them); an axis whose size
//     does not change is not resampled.
// Channels are resampled independently, so RGB and BGR data resize alike, and a mono8 or BGRA
// frame resized and then expanded to RGB equals the RGB frame resized (model-spec §1 drops alpha
// and replicates gray before resizing).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace dlvp {

enum class Filter { Bicubic, Bilinear };

// The filter `dlvp.preprocess.resize` names ("bicubic" or "bilinear").
inline Filter filter_from_name(const std::string& name) {
  if (name == "bicubic") return Filter::Bicubic;
  if (name == "bilinear") return Filter::Bilinear;
  throw std::invalid_argument("resize filter `" + name + "`: expected bicubic or bilinear");
}

namespace detail {

constexpr int kPrecisionBits = 32 - 8 - 2;

inline double kernel(Filter f, double x) {
  x = std::fabs(x);
  if (f == Filter::Bilinear) return x < 1.0 ? 1.0 - x : 0.0;
  const double a = -0.5;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

struct Window {
  int start;
  std::vector<std::int64_t> weights;  // fixed point, kPrecisionBits
};

inline std::vector<Window> windows(int input, int output, Filter f) {
  const double scale = static_cast<double>(input) / output;
  const double filter_scale = std::max(scale, 1.0);
  const double support = (f == Filter::Bicubic ? 2.0 : 1.0) * filter_scale;
  const double inv = 1.0 / filter_scale;
  const double one = static_cast<double>(std::uint64_t{1} << kPrecisionBits);
  std::vector<Window> out(output);
  for (int i = 0; i < output; ++i) {
    const double centre = (i + 0.5) * scale;
    // C's (int) truncation, as Pillow computes the bounds.
    const int start = std::max<long long>(static_cast<long long>(centre - support + 0.5), 0);
    const int end = static_cast<int>(std::min<long long>(static_cast<long long>(centre + support + 0.5), input));
    std::vector<double> w;
    double total = 0.0;
    for (int j = start; j < end; ++j) {
      w.push_back(kernel(f, (j - centre + 0.5) * inv));
      total += w.back();
    }
    out[i].start = start;
    for (double v : w) {
      if (total != 0.0) v /= total;
      // Round half away from zero, as Pillow's (int)(±0.5 + w·one).
      out[i].weights.push_back(static_cast<std::int64_t>(v < 0.0 ? -0.5 + v * one : 0.5 + v * one));
    }
  }
  return out;
}

inline std::uint8_t clip8(std::int64_t v) {
  if (v <= 0) return 0;
  if (v >= (std::int64_t{1} << (kPrecisionBits + 8))) return 255;
  return static_cast<std::uint8_t>(v >> kPrecisionBits);
}

// One pass over a w×h image of `n` interleaved channels (rows `stride` bytes apart) along x
// (horizontal) or y, into a packed image. The horizontal pass keeps the taps of one output
// pixel's channels together; the vertical one adds whole source rows into a row of accumulators
// (contiguous, so the compiler vectorises it). The sums are those of the per-sample definition.
inline std::vector<std::uint8_t> pass(const std::uint8_t* src, std::size_t stride, int& w, int& h, int n,
                                      int out_len, Filter f, bool horizontal) {
  const std::vector<Window> wins = windows(horizontal ? w : h, out_len, f);
  const int ow = horizontal ? out_len : w, oh = horizontal ? h : out_len;
  const std::int64_t half = std::int64_t{1} << (kPrecisionBits - 1);
  std::vector<std::uint8_t> out(static_cast<std::size_t>(ow) * oh * n);
  if (horizontal) {
    for (int y = 0; y < oh; ++y) {
      const std::uint8_t* row = src + static_cast<std::size_t>(y) * stride;
      std::uint8_t* to = out.data() + static_cast<std::size_t>(y) * ow * n;
      for (int x = 0; x < ow; ++x) {
        const Window& win = wins[x];
        const std::uint8_t* p = row + static_cast<std::size_t>(win.start) * n;
        const std::int64_t* wt = win.weights.data();
        const std::size_t taps = win.weights.size();
        if (n == 3) {
          std::int64_t a = half, b = half, c = half;
          for (std::size_t t = 0; t < taps; ++t, p += 3) {
            a += p[0] * wt[t];
            b += p[1] * wt[t];
            c += p[2] * wt[t];
          }
          to[x * 3] = clip8(a);
          to[x * 3 + 1] = clip8(b);
          to[x * 3 + 2] = clip8(c);
        } else {
          for (int ch = 0; ch < n; ++ch) {
            std::int64_t acc = half;
            for (std::size_t t = 0; t < taps; ++t) acc += p[t * n + ch] * wt[t];
            to[x * n + ch] = clip8(acc);
          }
        }
      }
    }
  } else {
    const std::size_t len = static_cast<std::size_t>(ow) * n;
    std::vector<std::int64_t> acc(len);
    for (int y = 0; y < oh; ++y) {
      const Window& win = wins[y];
      std::fill(acc.begin(), acc.end(), half);
      for (std::size_t t = 0; t < win.weights.size(); ++t) {
        const std::uint8_t* row = src + static_cast<std::size_t>(win.start + static_cast<int>(t)) * stride;
        const std::int64_t wt = win.weights[t];
        for (std::size_t i = 0; i < len; ++i) acc[i] += row[i] * wt;
      }
      std::uint8_t* to = out.data() + static_cast<std::size_t>(y) * len;
      for (std::size_t i = 0; i < len; ++i) to[i] = clip8(acc[i]);
    }
  }
  w = ow;
  h = oh;
  return out;
}

}  // namespace detail

// Resizes a width×height image of `channels` interleaved 8-bit channels (rows `stride` bytes
// apart) to out_width×out_height, packed (stride out_width·channels).
inline std::vector<std::uint8_t> resize8(const std::uint8_t* data, int width, int height, std::size_t stride,
                                         int channels, int out_width, int out_height, Filter filter) {
  if (data == nullptr) throw std::invalid_argument("resize: null image");
  if (width <= 0 || height <= 0 || out_width <= 0 || out_height <= 0 || channels <= 0)
    throw std::invalid_argument("resize: sizes and channels must be positive");
  const std::size_t row = static_cast<std::size_t>(width) * channels;
  if (stride < row) throw std::invalid_argument("resize: stride below width·channels");
  // The first pass reads the caller's rows in place; later passes read the packed result.
  std::vector<std::uint8_t> img;
  const std::uint8_t* from = data;
  std::size_t from_stride = stride;
  int w = width, h = height;
  auto resample = [&](int out_len, bool horizontal) {
    img = detail::pass(from, from_stride, w, h, channels, out_len, filter, horizontal);
    from = img.data();
    from_stride = static_cast<std::size_t>(w) * channels;
  };
  const long long in_w = width, in_h = height;
  const bool vertical_first = in_h > out_height && in_h * out_width > in_w * out_height;
  if (vertical_first && h != out_height) resample(out_height, false);
  if (w != out_width) resample(out_width, true);
  if (!vertical_first && h != out_height) resample(out_height, false);
  if (img.empty()) {  // nothing to resample: the pixels, packed
    img.resize(row * height);
    for (int y = 0; y < height; ++y)
      std::copy(data + y * stride, data + y * stride + row, img.begin() + static_cast<std::ptrdiff_t>(y * row));
  }
  return img;
}

// resize8 for 3-channel (RGB or BGR) images.
inline std::vector<std::uint8_t> resize_rgb8(const std::uint8_t* data, int width, int height, std::size_t stride,
                                             int out_width, int out_height, Filter filter) {
  return resize8(data, width, height, stride, 3, out_width, out_height, filter);
}

}  // namespace dlvp
