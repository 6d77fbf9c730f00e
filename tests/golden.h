// Golden files (namespace ctfuse::ref): PyTorch float64 results of the module for small configurations,
// written by tests/golden/make_golden.py. Format: tests/golden/README.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ctfuse/types.h"

namespace ctfuse {
namespace ref {

struct GoldenCase {
  std::string name;  // the file name without directory and ".bin"
  ConvTranspose2dParams p;
  int64_t bias_len = 1;
  GeluMode gelu = GeluMode::kErf;
  int64_t H_out = 0, W_out = 0;
  std::vector<float> x;          // [N, C_in, H_in, W_in]
  std::vector<float> weight;     // [C_in, C_out, kernel_h, kernel_w]
  std::vector<float> conv_bias;  // [C_out], or empty for no conv bias
  std::vector<float> bias;       // [bias_len]
  std::vector<double> y;         // [N, C_out, H_out, W_out]
  std::vector<double> s;         // [N, W_out]
  std::vector<double> out;       // [N, bias_len, 1, W_out]

  const float* conv_bias_or_null() const { return conv_bias.empty() ? nullptr : conv_bias.data(); }
};

// The format's magic (8 bytes) and version.
inline constexpr char kGoldenMagic[8] = {'C', 'T', 'F', 'G', 'O', 'L', 'D', '\0'};
inline constexpr int64_t kGoldenVersion = 1;

// Reads and validates one golden file. On failure returns false and, when `error`
// is non-null, says why (the file is rejected whole: bad magic or version, invalid
// parameters, an array whose length does not match the shapes, truncation or
// trailing bytes).
bool read_golden(const std::string& path, GoldenCase* out, std::string* error);

// The *.bin files in `dir`, as full paths, sorted; empty if `dir` does not exist.
std::vector<std::string> list_golden_files(const std::string& dir);

// $CTFUSE_GOLDEN_DIR if set and non-empty, else the directory "golden" next to the
// running executable (tests/CMakeLists.txt copies tests/golden/*.bin there).
std::string golden_dir();

}  // namespace ref
}  // namespace ctfuse
