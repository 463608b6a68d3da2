// libFuzzer target: TFRecord framing and CRC-32C (io/tfrecord.hpp, io/crc32c.hpp). The SSE4.2 and
// the portable CRC-32C must agree on any bytes at any alignment and split point, and a framed
// record must decode back to its data.
#include <io/tfrecord.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const std::uint32_t whole = kiln::io::crc32c(bytes);
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  if (~kiln::io::detail::crc32c_update_portable(~0u, p, size) != whole) std::abort();
#ifdef KILN_CRC32C_X86
  if (kiln::io::detail::cpu_has_sse42() && ~kiln::io::detail::crc32c_update_sse42(~0u, p, size) != whole) std::abort();
#endif
  // Split anywhere: the running CRC continues.
  const std::size_t split = size ? data[0] % (size + 1) : 0;
  if (kiln::io::crc32c(bytes.substr(split), kiln::io::crc32c(bytes.substr(0, split))) != whole) std::abort();
  std::string framed;
  kiln::io::append_tfrecord(framed, bytes);
  if (framed.size() != size + kiln::io::tfrecord_overhead) std::abort();
  if (framed.compare(12, size, bytes) != 0) std::abort();
  return 0;
}
