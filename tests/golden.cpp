// Golden-file reader. Format: tests/golden/README.md.
#include "golden.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

namespace ctfuse {
namespace ref {

namespace {

bool host_is_little_endian() {
  const uint32_t one = 1;
  unsigned char first = 0;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

// A bounds-checked cursor over the file's bytes.
class Reader {
 public:
  explicit Reader(std::vector<char> bytes) : bytes_(std::move(bytes)) {}

  size_t remaining() const { return bytes_.size() - pos_; }

  bool raw(void* dst, size_t n) {
    if (n > remaining()) return false;
    std::memcpy(dst, bytes_.data() + pos_, n);
    pos_ += n;
    return true;
  }

  bool i64(int64_t* v) { return raw(v, sizeof(*v)); }

  // An array: int64 element count (must equal `expected`), then the elements.
  template <typename T>
  bool array(const char* what, int64_t expected, std::vector<T>* dst, std::string* err) {
    int64_t count = -1;
    if (!i64(&count)) {
      *err = std::string("truncated before the length of ") + what;
      return false;
    }
    if (count != expected) {
      *err = std::string(what) + " has " + std::to_string(count) + " elements, expected " +
             std::to_string(expected);
      return false;
    }
    if (static_cast<uint64_t>(count) > remaining() / sizeof(T)) {
      *err = std::string("truncated inside ") + what;
      return false;
    }
    dst->resize(static_cast<size_t>(count));
    return raw(dst->data(), static_cast<size_t>(count) * sizeof(T));
  }

 private:
  std::vector<char> bytes_;
  size_t pos_ = 0;
};

bool fail(std::string* error, const std::string& path, const std::string& why) {
  if (error) *error = path + ": " + why;
  return false;
}

// a * b * ..., or -1 if any factor is negative or the product overflows 2^62.
int64_t product(std::initializer_list<int64_t> factors) {
  int64_t r = 1;
  for (int64_t f : factors) {
    if (f < 0) return -1;
    if (f != 0 && r > (int64_t{1} << 62) / f) return -1;
    r *= f;
  }
  return r;
}

}  // namespace

bool read_golden(const std::string& path, GoldenCase* out, std::string* error) {
  if (out == nullptr) return fail(error, path, "no output GoldenCase given");
  if (!host_is_little_endian()) return fail(error, path, "golden files are little-endian; this host is not");

  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(error, path, "cannot open");
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return fail(error, path, "read error");
  Reader r(std::move(bytes));

  char magic[8];
  if (!r.raw(magic, sizeof(magic)) || std::memcmp(magic, kGoldenMagic, sizeof(magic)) != 0)
    return fail(error, path, "not a ctfuse golden file (bad magic)");
  int64_t version = 0;
  if (!r.i64(&version)) return fail(error, path, "truncated in the header");
  if (version != kGoldenVersion)
    return fail(error, path, "unsupported version " + std::to_string(version));

  GoldenCase g;
  ConvTranspose2dParams& p = g.p;
  int64_t gelu = -1, H_out = -1, W_out = -1;
  int64_t* fields[] = {&p.N,          &p.C_in,         &p.H_in,       &p.W_in,       &p.C_out,
                       &p.kernel_h,   &p.kernel_w,     &p.stride_h,   &p.stride_w,   &p.pad_h,
                       &p.pad_w,      &p.output_pad_h, &p.output_pad_w, &p.dilation_h,
                       &p.dilation_w, &g.bias_len,     &gelu,         &H_out,        &W_out};
  for (int64_t* f : fields)
    if (!r.i64(f)) return fail(error, path, "truncated in the header");

  const Status st = conv_transpose2d_output_hw(p, &g.H_out, &g.W_out);
  if (!st.ok()) return fail(error, path, std::string("invalid parameters: ") + st.message);
  if (g.H_out != H_out || g.W_out != W_out)
    return fail(error, path, "stored H_out x W_out " + std::to_string(H_out) + " x " +
                                 std::to_string(W_out) + " differs from the computed " +
                                 std::to_string(g.H_out) + " x " + std::to_string(g.W_out));
  if (g.bias_len <= 0) return fail(error, path, "bias_len must be positive");
  if (gelu != 0 && gelu != 1) return fail(error, path, "gelu mode must be 0 (erf) or 1 (tanh)");
  g.gelu = gelu == 0 ? GeluMode::kErf : GeluMode::kTanh;

  const int64_t n_x = product({p.N, p.C_in, p.H_in, p.W_in});
  const int64_t n_w = product({p.C_in, p.C_out, p.kernel_h, p.kernel_w});
  const int64_t n_y = product({p.N, p.C_out, g.H_out, g.W_out});
  const int64_t n_s = product({p.N, g.W_out});
  const int64_t n_out = product({p.N, g.bias_len, g.W_out});
  if (n_x < 0 || n_w < 0 || n_y < 0 || n_s < 0 || n_out < 0)
    return fail(error, path, "shapes too large");

  std::string why;
  // conv_bias may be absent (count 0) or have C_out elements.
  {
    if (!r.array("x", n_x, &g.x, &why) || !r.array("weight", n_w, &g.weight, &why))
      return fail(error, path, why);
    int64_t cb_count = -1;
    if (!r.i64(&cb_count)) return fail(error, path, "truncated before the length of conv_bias");
    if (cb_count != 0 && cb_count != p.C_out)
      return fail(error, path, "conv_bias has " + std::to_string(cb_count) +
                                   " elements, expected 0 or C_out = " + std::to_string(p.C_out));
    if (static_cast<uint64_t>(cb_count) > r.remaining() / sizeof(float))
      return fail(error, path, "truncated inside conv_bias");
    g.conv_bias.resize(static_cast<size_t>(cb_count));
    r.raw(g.conv_bias.data(), g.conv_bias.size() * sizeof(float));
  }
  if (!r.array("bias", g.bias_len, &g.bias, &why) || !r.array("y", n_y, &g.y, &why) ||
      !r.array("s", n_s, &g.s, &why) || !r.array("out", n_out, &g.out, &why))
    return fail(error, path, why);
  if (r.remaining() != 0)
    return fail(error, path, std::to_string(r.remaining()) + " unexpected trailing bytes");

  g.name = std::filesystem::path(path).stem().string();
  *out = std::move(g);
  return true;
}

std::vector<std::string> list_golden_files(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return files;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".bin" && entry.is_regular_file(ec))
      files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string golden_dir() {
  if (const char* env = std::getenv("CTFUSE_GOLDEN_DIR"); env != nullptr && env[0] != '\0')
    return env;
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "golden";  // relative to the working directory as a last resort
  return (exe.parent_path() / "golden").string();
}

}  // namespace ref
}  // namespace ctfuse
