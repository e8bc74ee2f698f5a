// resize_check IN.rgb WIDTH HEIGHT OUT.rgb OUT_WIDTH OUT_HEIGHT bicubic|bilinear
// Resizes raw packed 8-bit RGB with dlvp/resize.hpp; tests/cpp_example.rs compares the bytes with
// Pillow's (fixtures/preprocess/expected.safetensors).
#include <dlvp/resize.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 8) {
    std::cerr << "usage: resize_check IN.rgb WIDTH HEIGHT OUT.rgb OUT_WIDTH OUT_HEIGHT bicubic|bilinear\n";
    return 2;
  }
  try {
    std::ifstream in(argv[1], std::ios::binary);
    const std::vector<std::uint8_t> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const int w = std::stoi(argv[2]), h = std::stoi(argv[3]);
    if (data.size() != static_cast<std::size_t>(w) * h * 3) {
      std::cerr << argv[1] << ": " << data.size() << " bytes, expected " << w * h * 3 << "\n";
      return 1;
    }
    const std::vector<std::uint8_t> out = dlvp::resize_rgb8(data.data(), w, h, static_cast<std::size_t>(w) * 3,
                                                            std::stoi(argv[5]), std::stoi(argv[6]),
                                                            dlvp::filter_from_name(argv[7]));
    std::ofstream(argv[4], std::ios::binary).write(reinterpret_cast<const char*>(out.data()),
                                                   static_cast<std::streamsize>(out.size()));
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
