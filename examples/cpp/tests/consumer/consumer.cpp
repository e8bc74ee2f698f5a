// consumer MODEL.onnx PIXELS.rgb — scores one image of raw 8-bit RGB at the model's size and
// prints {"format", "score", "topk"}: the smallest program a user's project builds against the
// dlvp:: CMake targets.
#include <dlvp/detector.hpp>
#include <dlvp/onnx_metadata.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: consumer MODEL.onnx PIXELS.rgb\n";
    return 2;
  }
  try {
    const auto metadata = dlvp::read_onnx_metadata(argv[1]);
    dlvp::Detector detector(argv[1]);
    const int s = detector.info().preprocess.image_size;
    std::ifstream in(argv[2], std::ios::binary);
    const std::vector<std::uint8_t> px{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    if (px.size() != static_cast<std::size_t>(s) * s * 3) throw dlvp::Error(std::string(argv[2]) + ": not S*S*3 bytes");
    const dlvp::Detection d = detector.detect({{px.data(), s, s, static_cast<std::size_t>(s) * 3, dlvp::Channels::RGB}})[0];
    std::printf("{\"format\":\"%s\",\"score\":%.9g,\"topk\":[", metadata.at("dlvp.format").c_str(), d.score);
    for (std::size_t t = 0; t < d.topk.size(); ++t) std::printf("%s%lld", t ? "," : "", static_cast<long long>(d.topk[t]));
    std::printf("]}\n");
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
