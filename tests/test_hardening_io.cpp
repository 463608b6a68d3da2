// Hostile files for the parsers (issue 12, defects 2, 12 and 13): IDX headers whose sizes wrap or
// exceed what the file can hold, gzip trailing garbage, checkpoints that are not checkpoints, forged
// CRC-consistent checkpoint records, and the trainable flag checked on restore. Every case must end
// in a kiln::error naming the file, without allocating what a forged header claims.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <io/checkpoint.hpp>
#include <io/idx.hpp>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>
#include <cstring>
#include <fstream>
#include <functional>
#include "test_util.hpp"

using namespace kiln;
namespace fs = std::filesystem;
using kt::contains;
using kt::message_of;

namespace {

// A fresh directory under /tmp, removed at scope exit.
struct temp_dir : kt::temp_dir {
  temp_dir() : kt::temp_dir("hardening-io") {}
};

using bytes = std::vector<unsigned char>;

bytes idx_bytes(std::uint32_t magic, const std::vector<std::uint32_t>& dims, const bytes& data) {
  bytes out;
  auto be32 = [&](std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<unsigned char>(v >> s));
  };
  be32(magic);
  for (auto d : dims) be32(d);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

bytes gzip_of(const bytes& plain) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  bytes out(deflateBound(&z, uLong(plain.size())));
  z.next_in = const_cast<unsigned char*>(plain.data());
  z.avail_in = uInt(plain.size());
  z.next_out = out.data();
  z.avail_out = uInt(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

void write_file(const fs::path& p, const bytes& b) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

long max_rss_kib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

}  // namespace

// ---- IDX -------------------------------------------------------------------------------------------

TEST_CASE("hardening_io.idx.dims_whose_product_wraps_are_refused") {
  temp_dir dir;
  // 2^20 * 2^20 * 2^24 = 2^64, which wraps to 0 bytes in u64.
  const auto file = (dir.path / "wrap").string();
  write_file(file, idx_bytes(0x803, {1u << 20, 1u << 20, 1u << 24}, {}));
  auto m = message_of([&] { io::read_idx_images(file); });
  CAPTURE(m);
  CHECK(contains(m, file));
  CHECK(contains(m, "[1048576,1048576,16777216]"));
  CHECK(contains(m, "more bytes than 2^63"));
  // The same gzipped.
  write_file(file + ".gz", gzip_of(idx_bytes(0x803, {1u << 20, 1u << 20, 1u << 24}, {})));
  m = message_of([&] { io::read_idx_images(file + ".gz"); });
  CHECK(contains(m, "more bytes than 2^63"));
}

TEST_CASE("hardening_io.idx.gzip_declaring_more_than_it_can_inflate_allocates_nothing") {
  temp_dir dir;
  // 4 MiB of zeros compress to ~4 KiB; the header declares 2^40 bytes. Refused at the header,
  // before the 4 MiB are inflated (the old reader grew its buffer to 8 MiB, then said truncated).
  const auto file = (dir.path / "bomb.gz").string();
  const auto gz = gzip_of(idx_bytes(0x803, {1u << 20, 1u << 20, 1}, bytes(std::size_t(4) << 20, 0)));
  REQUIRE(gz.size() < 64 * 1024);
  write_file(file, gz);
  const auto m = message_of([&] { io::read_idx_images(file); });
  CAPTURE(m);
  CHECK(contains(m, file));
  CHECK(contains(m, "1099511627776 bytes, more than its " + std::to_string(gz.size()) + " gzip bytes can inflate to"));
}

TEST_CASE("hardening_io.idx.plain_size_checked_against_the_file_before_reading") {
  temp_dir dir;
  const auto file = (dir.path / "huge").string();
  write_file(file, idx_bytes(0x803, {4000000, 1000, 1}, {1, 2, 3}));
  const auto m = message_of([&] { io::read_idx_images(file); });
  CHECK(contains(m, "truncated"));
  CHECK(contains(m, "= 4000000000 bytes of data, but only 3 follow"));
}

TEST_CASE("hardening_io.idx.gzip_trailing_garbage_is_refused") {
  temp_dir dir;
  const bytes pixels = {1, 2, 3, 4, 5, 6, 7, 8};
  auto gz = gzip_of(idx_bytes(0x803, {2, 2, 2}, pixels));
  const auto file = (dir.path / "im.gz").string();
  write_file(file, gz);
  CHECK(io::read_idx_images(file).pixels == std::vector<std::uint8_t>(pixels.begin(), pixels.end()));
  for (const bytes& tail : {bytes{'g', 'a', 'r', 'b', 'a', 'g', 'e'}, bytes{0}, bytes{0x1f}}) {
    auto longer = gz;
    longer.insert(longer.end(), tail.begin(), tail.end());
    write_file(file, longer);
    const auto m = message_of([&] { io::read_idx_images(file); });
    CAPTURE(m);
    CHECK(contains(m, file));
    CHECK((contains(m, "trailing garbage") || contains(m, "truncated")));
  }
}

TEST_CASE("hardening_io.idx.gzip_cut_in_its_trailer_is_refused") {
  temp_dir dir;
  auto gz = gzip_of(idx_bytes(0x803, {2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8}));
  gz.resize(gz.size() - 4);  // the data is all there; the length field of the trailer is not
  const auto file = (dir.path / "cut.gz").string();
  write_file(file, gz);
  const auto m = message_of([&] { io::read_idx_images(file); });
  CAPTURE(m);
  CHECK(contains(m, file));
  CHECK(contains(m, "truncated"));
}

TEST_CASE("hardening_io.idx.concatenated_gzip_members_are_one_stream") {
  temp_dir dir;
  const auto whole = idx_bytes(0x803, {2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  auto gz = gzip_of(bytes(whole.begin(), whole.begin() + 10));
  const auto second = gzip_of(bytes(whole.begin() + 10, whole.end()));
  gz.insert(gz.end(), second.begin(), second.end());
  const auto file = (dir.path / "two.gz").string();
  write_file(file, gz);
  const auto im = io::read_idx_images(file);
  CHECK(im.count == 2);
  CHECK(im.pixels == std::vector<std::uint8_t>{1, 2, 3, 4, 5, 6, 7, 8});
}

TEST_CASE("hardening_io.idx.from_bytes_in_memory") {
  const auto b = idx_bytes(0x801, {3}, {7, 8, 9});
  std::vector<std::int64_t> dims;
  const auto values = io::detail::read_idx_bytes(std::as_bytes(std::span(b)), "labels in memory", 0x801, dims);
  CHECK(dims == std::vector<std::int64_t>{3});
  CHECK(values == std::vector<std::uint8_t>{7, 8, 9});
  const auto gz = gzip_of(b);
  CHECK(io::detail::read_idx_bytes(std::as_bytes(std::span(gz)), "gz", 0x801, dims) == values);
  const auto m = message_of([&] { io::detail::read_idx_bytes({}, "nothing", 0x801, dims); });
  CHECK(contains(m, "nothing is truncated: 0 bytes"));
}

// ---- checkpoints ---------------------------------------------------------------------------------

namespace {

void put_u32(bytes& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<unsigned char>(v >> (8 * i)));
}
void put_u64(bytes& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<unsigned char>(v >> (8 * i)));
}
std::uint32_t crc(const unsigned char* p, std::size_t n) { return std::uint32_t(crc32_z(0, p, n)); }

// A checkpoint with one CRC-consistent f32 record of any dims, data bytes and data: what a forger
// (or a fuzzer) can write.
bytes forged_checkpoint(const std::vector<std::int64_t>& dims, std::uint64_t declared_bytes, const bytes& data, std::uint8_t flags = 1) {
  bytes f = {'K', 'I', 'L', 'N', 'C', 'K', 'P', 'T'};
  put_u32(f, 1);
  put_u32(f, 1);
  put_u64(f, 5);
  put_u32(f, 0);
  put_u32(f, crc(f.data(), f.size()));
  const std::size_t record = f.size();
  put_u32(f, 1);
  f.push_back(1);  // f32
  f.push_back(std::uint8_t(dims.size()));
  f.push_back(flags);
  f.push_back(0);
  for (auto d : dims) put_u64(f, std::uint64_t(d));
  put_u64(f, declared_bytes);
  f.push_back('w');
  put_u32(f, crc(f.data() + record, f.size() - record));
  f.insert(f.end(), data.begin(), data.end());
  put_u32(f, crc(data.data(), data.size()));
  return f;
}

constexpr auto one_weight = [] {
  graph g;
  g.output("y", g.variable("w", f32, {2}, init::arange(1)) * 2.0f);
  return g;
};
constexpr auto one_frozen_weight = [] {
  graph g;
  g.output("y", g.variable("w", f32, {2}, init::zeros(), /*trainable=*/false) * 2.0f);
  return g;
};

}  // namespace

TEST_CASE("hardening_io.checkpoint.forged_dims_that_overflow_are_corrupt") {
  temp_dir dir;
  const auto file = dir.path / "ckpt-5.kiln";
  // 2^32 * 2^32 elements overflow int64; 2^61 f32 elements are 2^63 bytes, beyond int64 too.
  for (const auto& dims : {std::vector<std::int64_t>{std::int64_t(1) << 32, std::int64_t(1) << 32}, std::vector<std::int64_t>{std::int64_t(1) << 61},
                           std::vector<std::int64_t>{std::int64_t(1) << 62, 4}}) {
    write_file(file, forged_checkpoint(dims, 0, {}));
    const auto m = message_of([&] { io::read_checkpoint_contents(file); });
    CAPTURE(m);
    CHECK(contains(m, "kiln: checkpoint " + file.string() + " is corrupt"));
    CHECK(contains(m, "tensor 'w'"));
  }
}

TEST_CASE("hardening_io.checkpoint.a_large_file_that_is_not_a_checkpoint_is_not_read_whole") {
  temp_dir dir;
  const auto file = dir.path / "ckpt-1.kiln";
  // 1 GiB of zeros, sparse: the old reader allocated and read all of it before checking the magic.
  {
    std::ofstream f(file, std::ios::binary);
  }
  REQUIRE(::truncate(file.c_str(), off_t(1) << 30) == 0);
  const long before = max_rss_kib();
  const auto m = message_of([&] { io::read_checkpoint_contents(file); });
  const long grown_kib = max_rss_kib() - before;
  CAPTURE(m);
  CHECK(contains(m, "kiln: checkpoint " + file.string() + " is not a kiln checkpoint (bad magic)"));
  CHECK(grown_kib < 64 * 1024);
}

TEST_CASE("hardening_io.checkpoint.trainable_flag_must_match") {
  temp_dir dir;
  auto trained = compile<cpu>(one_weight);
  const auto file = dir.path / "ckpt-3.kiln";
  io::write_checkpoint(trained.vars(), file, 3);
  REQUIRE(io::read_checkpoint_contents(file).tensors.at(0).trainable);
  auto frozen = compile<cpu>(one_frozen_weight);
  const auto m = message_of([&] { io::restore_checkpoint(frozen.vars(), file); });
  CAPTURE(m);
  CHECK(contains(m, file.string()));
  CHECK(contains(m, "variable 'w' is not trainable in the store but trainable in the checkpoint"));
  CHECK(frozen.variable<float>("w").flat()[1] == 0.0f);  // untouched
  // The same flag restores.
  auto again = compile<cpu>(one_weight);
  again.variable<float>("w").flat()[1] = 9.0f;
  CHECK(io::restore_checkpoint(again.vars(), file).step == 3);
  CHECK(again.variable<float>("w").flat()[1] == 2.0f);
}

TEST_CASE("hardening_io.checkpoint.unknown_record_flags_are_corrupt") {
  const auto f = forged_checkpoint({2}, 8, bytes(8, 0), 0x81);
  const auto m = message_of([&] { io::read_checkpoint_contents(std::as_bytes(std::span(f)), "forged"); });
  CHECK(contains(m, "kiln: checkpoint forged is corrupt: tensor 'w' has unknown flags"));
}

TEST_CASE("hardening_io.checkpoint.restore_from_bytes_in_memory") {
  const auto f = forged_checkpoint({2}, 8, bytes{0, 0, 0x80, 0x3f, 0, 0, 0, 0x40}, 1);  // 1.0f, 2.0f
  auto ex = compile<cpu>(one_weight);
  ex.variable<float>("w").flat()[0] = 7.0f;
  const auto r = io::restore_checkpoint(ex.vars(), std::as_bytes(std::span(f)), "in memory");
  CHECK(r.step == 5);
  CHECK(ex.variable<float>("w").flat()[0] == 1.0f);
  CHECK(ex.variable<float>("w").flat()[1] == 2.0f);
}

namespace {

// A store of n f32 [size] variables named <prefix><i>, built without compiling a graph.
variables store_of(const std::string& prefix, int n, std::int64_t size = 4) {
  variables store;
  for (int i = 0; i < n; ++i) {
    node v;
    v.kind = op::variable;
    v.type = f32;
    v.out.rank = 1;
    v.out.dim[0] = size;
    v.name = name_text((prefix + std::to_string(i)).c_str());
    v.flags = flag_trainable;
    store.bind(v, {}, 1);
  }
  return store;
}

}  // namespace

TEST_CASE("hardening_io.checkpoint.mismatch_message_stays_short") {
  // Restoring another model's checkpoint once produced a 15 KB message: every missing variable
  // repeated the checkpoint's whole list of names.
  temp_dir dir;
  const auto file = dir.path / "ckpt-1.kiln";
  io::write_checkpoint(store_of("encoder/layer_with_a_long_name/kernel_", 200), file, 1);
  variables other = store_of("decoder/another_long_layer_name/weights_", 200);
  const auto m = message_of([&] { io::restore_checkpoint(other, file); });
  CAPTURE(m);
  CHECK(m.size() < 4096);
  CHECK(contains(m, "kiln: cannot restore checkpoint " + file.string()));
  CHECK(contains(m, "variable 'decoder/another_long_layer_name/weights_0' (f32 [4]) is missing from the checkpoint"));
  CHECK(contains(m, "... and 188 more problems"));
  CHECK(contains(m, "200 of the store's 200 variables are missing; the checkpoint holds 200 tensors: encoder/layer_with_a_long_name/kernel_0"));
  CHECK(contains(m, "(176 more)"));
  CHECK(contains(m, "written by another model"));
}

TEST_CASE("hardening_io.checkpoint.truncation_message_gives_the_tensors_size") {
  // A file cut inside a tensor bigger than the whole file once reported "needs <file size + 1> bytes".
  temp_dir dir;
  const auto file = dir.path / "ckpt-1.kiln";
  io::write_checkpoint(store_of("w", 1, 1000), file, 1);
  fs::resize_file(file, 100);
  const auto m = message_of([&] { io::read_checkpoint_contents(file); });
  CAPTURE(m);
  CHECK(contains(m, file.string() + " is truncated: the data of tensor 'w0' (f32 [1000]) needs 4000 bytes at offset"));
  CHECK(contains(m, "but the file ends at 100"));
}
