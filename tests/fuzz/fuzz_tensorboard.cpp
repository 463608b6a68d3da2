// libFuzzer target: the TensorBoard summary writer's inputs (io/tensorboard.hpp, io/png.hpp,
// io/tfrecord.hpp): arbitrary tags, texts, histogram values (NaN, infinities, denormals), image
// sizes and pixels, steps. Every call must write or throw kiln::error; every file written must be
// a sequence of well-framed TFRecords whose CRC-32C checks pass.
#include <io/tensorboard.hpp>
#include <unistd.h>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

namespace {

// Reads the input front to back; past its end everything is zero.
struct input {
  const std::uint8_t* p;
  std::size_t n;
  std::uint8_t byte() { return n ? (--n, *p++) : 0; }
  template <class T>
  T value() {
    T v{};
    unsigned char raw[sizeof(T)] = {};
    for (auto& b : raw) b = byte();
    std::memcpy(&v, raw, sizeof(T));
    return v;
  }
  std::string_view text() {
    const std::size_t want = std::min<std::size_t>(byte(), n);
    const std::string_view s(reinterpret_cast<const char*>(p), want);
    p += want;
    n -= want;
    return s;
  }
};

// Every record: u64 length, masked CRC-32C of the length, data, masked CRC-32C of the data.
void check_framing(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  const std::string all{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  std::size_t at = 0;
  auto le = [&](std::size_t pos, int bytes) {
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= std::uint64_t(static_cast<unsigned char>(all[pos + std::size_t(i)])) << (8 * i);
    return v;
  };
  while (at < all.size()) {
    if (all.size() - at < 12) std::abort();
    const std::uint64_t length = le(at, 8);
    if (le(at + 8, 4) != kiln::io::masked_crc32c(std::string_view(all).substr(at, 8))) std::abort();
    if (all.size() - at - 12 < length + 4) std::abort();
    if (le(at + 12 + length, 4) != kiln::io::masked_crc32c(std::string_view(all).substr(at + 12, length))) std::abort();
    at += 12 + length + 4;
  }
}

struct writer_dir {
  std::filesystem::path path;
  writer_dir() {
    char pattern[] = "/tmp/kiln-fuzz-tensorboard-XXXXXX";
    if (!::mkdtemp(pattern)) std::abort();
    path = pattern;
  }
  ~writer_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static writer_dir dir;
  static int calls = 0;
  static std::unique_ptr<kiln::summary_writer> writer;
  if (!writer) writer = std::make_unique<kiln::summary_writer>(dir.path);
  input in{data, size};
  try {
    const std::int64_t step = in.value<std::int64_t>();
    switch (in.byte() % 5) {
      case 0: writer->scalar(in.text(), in.value<double>(), step); break;
      case 1: {
        const std::string tag(in.text());
        std::vector<double> values(in.byte());
        for (auto& v : values) v = in.value<double>();
        writer->histogram(tag, values, step);
        break;
      }
      case 2: {
        const std::string tag(in.text());
        const int height = in.value<std::int8_t>(), width = in.value<std::int8_t>(), channels = in.value<std::int8_t>();
        // Pixels as many as the sizes claim when they are sane, so the PNG encoder reads only its own bytes.
        const std::size_t count = height > 0 && width > 0 && channels > 0 ? std::size_t(height) * std::size_t(width) * std::size_t(channels) : 0;
        std::vector<std::uint8_t> pixels(count);
        for (auto& px : pixels) px = in.byte();
        writer->image(tag, height, width, channels, count ? pixels.data() : nullptr, step);
        break;
      }
      case 3: {
        const std::string tag(in.text());
        writer->text(tag, in.text(), step);
        break;
      }
      case 4: {
        std::vector<float> values(in.byte());
        for (auto& v : values) v = in.value<float>();
        writer->histogram(in.text(), values, step);
        break;
      }
    }
  } catch (const kiln::error&) {
  }
  // Now and then: everything written so far is well framed; then a fresh file, so /tmp stays small.
  if (++calls % 256 == 0) {
    writer->close();
    check_framing(writer->path());
    std::filesystem::remove(writer->path());
    writer.reset();
  }
  return 0;
}
