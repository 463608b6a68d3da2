// libFuzzer target: IDX files, plain and gzip (io/idx.hpp). Any input must either parse into
// dims whose product is the byte count, or throw kiln::error; anything else (a crash, a sanitizer
// report, std::bad_alloc or another exception) is a finding.
#include <io/idx.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  for (const std::uint32_t magic : {kiln::io::idx_images_magic, kiln::io::idx_labels_magic}) {
    std::vector<std::int64_t> dims;
    try {
      const auto values = kiln::io::detail::read_idx_bytes(bytes, "fuzz input", magic, dims);
      std::uint64_t product = 1;
      for (const auto d : dims) product *= std::uint64_t(d);
      if (product != values.size()) std::abort();  // the header and the data disagree
    } catch (const kiln::error&) {
    }
  }
  return 0;
}
