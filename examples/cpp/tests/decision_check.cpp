// decision_check MODEL.onnx
// The decision rules of dlvp/detector.hpp through its API, which dlvp_detect cannot reach (it checks
// --threshold before a detector exists): decide() makes a NaN score NG, set_threshold() refuses a
// threshold that could not decide and leaves the detector as it was, parse_threshold() reads text
// as `dlvp detect --threshold` does. Prints one line per failed check; exit 0 when none failed.
// Run by tests/cpp_example.rs.
#include <dlvp/detector.hpp>

#include <cmath>
#include <iostream>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  if (!ok) {
    std::cout << "FAIL: " << what << "\n";
    ++failures;
  }
}

// The message of the std::invalid_argument `f` throws; nothing if it throws none.
template <typename F>
std::optional<std::string> refusal(F f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return std::string(e.what());
  }
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: decision_check MODEL.onnx\n";
    return 2;
  }
  using dlvp::Verdict;
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  check(dlvp::decide(0.4f, 0.5f) == Verdict::Ok, "0.4 at 0.5 is OK");
  check(dlvp::decide(0.5f, 0.5f) == Verdict::Ok, "a tie is OK");
  check(dlvp::decide(0.5000001f, 0.5f) == Verdict::Ng, "above is NG");
  check(dlvp::decide(nan, 0.5f) == Verdict::Ng, "a NaN score is NG");
  check(dlvp::decide(-nan, 0.5f) == Verdict::Ng, "a negative NaN score is NG");

  try {
    dlvp::Detector detector(argv[1]);
    const std::optional<float> before = detector.threshold();
    const std::string range = ": scores and map values lie in [0, 1], so a threshold must be at least 0 and below 1";
    const std::pair<float, std::string> bad[] = {
        {nan, "the image threshold NaN is not a number: a NaN threshold would pass every part"},
        {inf, "the image threshold inf would pass every part" + range},
        {1.0f, "the image threshold 1 would pass every part" + range},
        {1.5f, "the image threshold 1.5 would pass every part" + range},
        {-0.01f, "the image threshold -0.01 would make every part NG" + range},
        {-inf, "the image threshold -inf would make every part NG" + range},
    };
    for (const auto& [value, want] : bad) {
      const auto got = refusal([&] { detector.set_threshold(value); });
      check(got == want, "set_threshold(" + dlvp::number_text(value) + ") refused with \"" + want + "\", got \"" +
                             got.value_or("no exception") + "\"");
      const std::optional<float> now = detector.threshold();
      check(now.has_value() == before.has_value() && (!now || *now == *before),
            "a refused threshold left the detector's as it was");
    }
    for (float value : {0.0f, 0.5f, 0.99999994f}) {
      const auto got = refusal([&] { detector.set_threshold(value); });
      check(!got && detector.threshold() == value,
            "set_threshold(" + dlvp::number_text(value) + ") accepted: " + got.value_or(""));
    }
  } catch (const std::exception& e) {
    std::cout << "FAIL: " << e.what() << "\n";
    return 1;
  }

  check(dlvp::parse_threshold(" 0.25 ") == 0.25f, "\" 0.25 \" reads as 0.25");
  check(dlvp::parse_threshold("0") == 0.0f, "\"0\" reads as 0");
  for (const char* text : {"abc", "0x1p-1", "", "0.5x", "nan(1)"})
    check(refusal([&] { dlvp::parse_threshold(text); }) ==
              "\"" + std::string(text) + "\" is not a number; expected one in [0, 1)",
          std::string("\"") + text + "\" is not a number");
  check(refusal([&] { dlvp::parse_threshold("-NaN"); }) ==
            std::string("NaN is not a number: a NaN threshold would pass every part"),
        "\"-NaN\" is refused as NaN");
  check(refusal([&] { dlvp::parse_threshold("Infinity"); }).value_or("").rfind("inf would pass every part", 0) == 0,
        "\"Infinity\" is refused as inf");
  if (failures == 0) std::cout << "ok\n";
  return failures == 0 ? 0 : 1;
}
