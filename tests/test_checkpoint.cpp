// Checkpoints: bit-exact round trips of every dtype, the file layout read back by a decoder written
// here from the format description, keep-last-K, every restore error (missing variable, other
// shape or dtype, corrupt byte anywhere, truncation anywhere) leaving the store untouched, and
// atomic saves (a save that fails mid-write leaves the previous checkpoint restorable).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <io/checkpoint_directory.hpp>
#include <sys/resource.h>
#include <zlib.h>
#include <csignal>
#include <cstring>
#include <fstream>
#include <limits>
#include "test_util.hpp"

using namespace kiln;
namespace fs = std::filesystem;
using kt::contains;
using kt::message_of;

namespace {

// A fresh directory under /tmp, removed at scope exit.
struct temp_dir : kt::temp_dir {
  temp_dir() : kt::temp_dir("ckpt") {}
};

std::vector<unsigned char> read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
void write_bytes(const fs::path& p, const std::vector<unsigned char>& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}


// Every byte of every variable, to prove a failed restore changed nothing.
std::vector<std::vector<std::byte>> snapshot(const variables& store) {
  std::vector<std::vector<std::byte>> all;
  for (std::size_t i = 0; i < store.size(); ++i) all.emplace_back(store[i].data.data(), store[i].data.data() + store[i].data.size());
  return all;
}

// A train-step-like model: weights, an optimizer-slot-like f64 tensor, an i64 counter and i32
// and bool state. Every run bumps the counter and moves the weights.
constexpr auto train_model = [] {
  graph g;
  tensor w = g.variable("dense/kernel", f32, {4, 3}, init::glorot_uniform(1));
  tensor m = g.variable("adam/m", f64, {5}, init::normal(0, 1, 2));
  tensor it = g.variable("iterations", i64, {}, init::zeros());
  tensor big = g.variable("big", i64, {3}, init::zeros());
  tensor counts = g.variable("counts", i32, {2, 2}, init::arange(1));
  tensor mask = g.variable("mask", boolean, {3}, init::zeros());
  tensor x = g.placeholder("x", f32, {4, 3});
  g.output("it", assign_add(it, g.scalar(1, i64)));
  g.output("w", assign_add(w, x));
  g.output("m", assign(m, m * 0.5));
  g.output("big", big * g.scalar(1, i64));
  g.output("counts", counts * g.scalar(1, i32));
  g.output("mask", logical_not(mask));
  return g;
};
// The same names with one variable fewer: restoring a train checkpoint into an inference graph.
constexpr auto model_subset = [] {
  graph g;
  g.output("w", g.variable("dense/kernel", f32, {4, 3}, init::zeros()) * 1.0f);
  return g;
};
constexpr auto model_extra = [] {
  graph g;
  tensor w = g.variable("dense/kernel", f32, {4, 3}, init::zeros());
  g.output("y", w + g.variable("dense/bias", f32, {3}, init::zeros()));
  return g;
};
constexpr auto model_transposed = [] {
  graph g;
  g.output("w", g.variable("dense/kernel", f32, {3, 4}, init::zeros()) * 1.0f);
  g.output("m", g.variable("adam/m", f32, {5}, init::zeros()) * 1.0f);
  return g;
};

using executor = decltype(compile<cpu>(train_model));

// Values a sloppy writer would lose: -0, NaN payloads, denormals, infinities, i64 beyond 2^53.
void set_special_values(executor& ex) {
  auto w = ex.variable<float>("dense/kernel").flat();
  w[0] = -0.0f;
  w[1] = std::bit_cast<float>(0x7fc12345u);
  w[2] = std::numeric_limits<float>::denorm_min();
  w[3] = -std::numeric_limits<float>::infinity();
  w[4] = 3.14159274f;
  auto m = ex.variable<double>("adam/m").flat();
  m[0] = std::bit_cast<double>(0x7ff8000000abcdefull);
  m[1] = -std::numeric_limits<double>::denorm_min();
  m[2] = 1e308;
  auto big = ex.variable<std::int64_t>("big").flat();
  big[0] = (std::int64_t(1) << 62) + 7;
  big[1] = std::numeric_limits<std::int64_t>::min();
  big[2] = -1;
  ex.variable<std::int32_t>("counts").flat()[3] = -2147483647;
  ex.variable<bool>("mask").flat()[1] = true;
}

void scramble(variables& store) {
  for (std::size_t i = 0; i < store.size(); ++i) {
    auto* e = store.find(store[i].name);
    for (std::size_t b = 0; b < e->data.size(); ++b) e->data.data()[b] = std::byte(0xA5 ^ b);
  }
}

// Decoder written from the format comment, not from the writer's code.
struct decoded {
  std::uint32_t version = 0, count = 0;
  std::int64_t step = 0;
  struct tensor {
    std::string name;
    int dtype_code = 0, rank = 0, flags = 0;
    std::vector<std::int64_t> dims;
    std::vector<unsigned char> data;
  };
  std::vector<tensor> tensors;
};

decoded decode(const std::vector<unsigned char>& f) {
  auto u32 = [&](std::size_t at) {
    std::uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = v << 8 | f.at(at + std::size_t(i));
    return v;
  };
  auto u64 = [&](std::size_t at) { return std::uint64_t(u32(at)) | std::uint64_t(u32(at + 4)) << 32; };
  auto crc = [&](std::size_t at, std::size_t n) { return std::uint32_t(crc32(0, f.data() + at, unsigned(n))); };
  decoded d;
  REQUIRE(std::string(f.begin(), f.begin() + 8) == "KILNCKPT");
  d.version = u32(8);
  d.count = u32(12);
  d.step = std::int64_t(u64(16));
  CHECK(u32(24) == 0);
  CHECK(u32(28) == crc(0, 28));
  std::size_t at = 32;
  for (std::uint32_t i = 0; i < d.count; ++i) {
    decoded::tensor t;
    const std::size_t start = at;
    const std::uint32_t name_length = u32(at);
    t.dtype_code = f.at(at + 4);
    t.rank = f.at(at + 5);
    t.flags = f.at(at + 6);
    CHECK(f.at(at + 7) == 0);
    at += 8;
    for (int k = 0; k < t.rank; ++k, at += 8) t.dims.push_back(std::int64_t(u64(at)));
    const std::uint64_t bytes = u64(at);
    at += 8;
    t.name.assign(f.begin() + std::ptrdiff_t(at), f.begin() + std::ptrdiff_t(at + name_length));
    at += name_length;
    CHECK(u32(at) == crc(start, at - start));
    at += 4;
    t.data.assign(f.begin() + std::ptrdiff_t(at), f.begin() + std::ptrdiff_t(at + bytes));
    CHECK(u32(at + bytes) == crc(at, bytes));
    at += bytes + 4;
    d.tensors.push_back(std::move(t));
  }
  CHECK(at == f.size());
  return d;
}

}  // namespace

TEST_CASE("checkpoint.round_trip_bit_exact") {
  temp_dir dir;
  auto a = compile<cpu>(train_model);
  const std::vector<float> x(12, 0.25f);
  a.run({{"x", view(x, {4, 3})}});
  a.run({{"x", view(x, {4, 3})}});
  set_special_values(a);
  const auto saved = snapshot(a.vars());
  const auto file = io::save_checkpoint(a.vars(), dir.path, 2);
  CHECK(file == dir.path / "ckpt-2.kiln");
  CHECK(io::latest_checkpoint(dir.path) == file);

  auto b = compile<cpu>(train_model);
  scramble(b.vars());
  const auto r = io::restore_checkpoint(b.vars(), file);
  CHECK(r.step == 2);
  CHECK(r.unused.empty());
  CHECK(snapshot(b.vars()) == saved);
  // The executor computes from the restored state: the counter goes on from 2.
  const auto& out = b.run({{"x", view(x, {4, 3})}});
  CHECK(out.get<std::int64_t>("it").item() == 3);
  CHECK(out.get<std::int64_t>("big").flat()[0] == (std::int64_t(1) << 62) + 7);
  CHECK(out.get<bool>("mask").flat()[1] == false);

  // The layout, read by the test's own decoder.
  const auto d = decode(read_bytes(file));
  CHECK(d.version == 1);
  CHECK(d.step == 2);
  REQUIRE(d.count == a.vars().size());
  for (std::size_t i = 0; i < d.tensors.size(); ++i) {
    const auto& e = a.vars()[i];
    const auto& t = d.tensors[i];
    CAPTURE(e.name);
    CHECK(t.name == e.name);
    CHECK(t.rank == e.shape.rank);
    for (int k = 0; k < t.rank; ++k) CHECK(t.dims[std::size_t(k)] == e.shape[k]);
    CHECK(std::memcmp(t.data.data(), e.data.data(), t.data.size()) == 0);
    CHECK(t.data.size() == e.data.size());
  }
  auto by_name = [&](const std::string& n) -> const decoded::tensor& {
    for (const auto& t : d.tensors)
      if (t.name == n) return t;
    FAIL("missing " << n);
    return d.tensors[0];
  };
  CHECK(by_name("dense/kernel").dtype_code == 1);
  CHECK(by_name("adam/m").dtype_code == 2);
  CHECK(by_name("counts").dtype_code == 3);
  CHECK(by_name("iterations").dtype_code == 4);
  CHECK(by_name("mask").dtype_code == 5);
  CHECK(by_name("iterations").rank == 0);
  CHECK(by_name("iterations").data == std::vector<unsigned char>{2, 0, 0, 0, 0, 0, 0, 0});  // little-endian 2

  const auto contents = io::read_checkpoint_contents(file);
  CHECK(contents.step == 2);
  REQUIRE(contents.tensors.size() == 6);
  CHECK(contents.tensors[0].name == "dense/kernel");
  CHECK(contents.tensors[0].shape == kiln::dims{4, 3});
  CHECK(contents.tensors[0].trainable);
}

TEST_CASE("checkpoint.keep_last_k_and_latest") {
  temp_dir dir;
  auto a = compile<cpu>(train_model);
  io::checkpoint_manager manager(dir.path / "run", 3);
  CHECK(!manager.latest());
  CHECK(!manager.restore_latest(a.vars()));
  for (std::int64_t step : {5, 20, 100, 9, 1000, 300}) {
    a.variable<std::int64_t>("iterations").item() = step;
    manager.save(a.vars(), step);
  }
  // Numeric, not lexical, order: 9 < 20 < 100 < 300 < 1000; the three newest steps remain.
  std::vector<std::int64_t> steps;
  for (const auto& [step, path] : io::list_checkpoints(dir.path / "run")) steps.push_back(step);
  CHECK(steps == std::vector<std::int64_t>{100, 300, 1000});
  CHECK(io::latest_checkpoint(dir.path / "run") == dir.path / "run" / "ckpt-1000.kiln");
  auto b = compile<cpu>(train_model);
  CHECK(manager.restore_latest(b.vars()) == 1000);
  CHECK(b.variable<std::int64_t>("iterations").item() == 1000);
  // Only our names count: other files in the directory are neither listed nor deleted.
  write_bytes(dir.path / "run" / "ckpt-abc.kiln", {1});
  write_bytes(dir.path / "run" / "notes.txt", {1});
  write_bytes(dir.path / "run" / "ckpt-7.kiln.bak", {1});
  manager.save(a.vars(), 2000);
  CHECK(io::list_checkpoints(dir.path / "run").size() == 3);
  CHECK(fs::exists(dir.path / "run" / "notes.txt"));
  CHECK(fs::exists(dir.path / "run" / "ckpt-abc.kiln"));
  CHECK(fs::exists(dir.path / "run" / "ckpt-7.kiln.bak"));
  CHECK(!io::latest_checkpoint(dir.path / "missing"));
  CHECK(contains(message_of([&] { io::save_checkpoint(a.vars(), dir.path, -1); }), "step must be >= 0"));
}

TEST_CASE("checkpoint.restore_into_other_graphs") {
  temp_dir dir;
  auto a = compile<cpu>(train_model);
  set_special_values(a);
  const auto file = io::save_checkpoint(a.vars(), dir.path, 7);

  // Fewer variables: fine, the rest of the file is reported as unused.
  auto small = compile<cpu>(model_subset);
  const auto r = io::restore_checkpoint(small.vars(), file);
  CHECK(r.unused == std::vector<std::string>{"adam/m", "iterations", "big", "counts", "mask"});
  CHECK(std::memcmp(small.variable<float>("dense/kernel").data(), a.variable<float>("dense/kernel").data(), 48) == 0);

  // A variable the file lacks: the message names it and what the file holds; nothing is written.
  auto extra = compile<cpu>(model_extra);
  scramble(extra.vars());
  auto before = snapshot(extra.vars());
  auto m = message_of([&] { io::restore_checkpoint(extra.vars(), file); });
  CHECK(contains(m, file.string()));
  CHECK(contains(m, "variable 'dense/bias' (f32 [3]) is missing from the checkpoint"));
  CHECK(contains(m, "dense/kernel, adam/m, iterations, big, counts, mask"));
  CHECK(snapshot(extra.vars()) == before);

  // Another shape and another dtype: both named with both shapes, in one message.
  auto transposed = compile<cpu>(model_transposed);
  scramble(transposed.vars());
  before = snapshot(transposed.vars());
  m = message_of([&] { io::restore_checkpoint(transposed.vars(), file); });
  CHECK(contains(m, "variable 'dense/kernel' is f32 [3,4] in the store but f32 [4,3] in the checkpoint"));
  CHECK(contains(m, "variable 'adam/m' is f32 [5] in the store but f64 [5] in the checkpoint"));
  CHECK(snapshot(transposed.vars()) == before);
}

TEST_CASE("checkpoint.corrupt_or_truncated_files_fail_cleanly") {
  temp_dir dir;
  auto a = compile<cpu>(train_model);
  set_special_values(a);
  const auto file = io::save_checkpoint(a.vars(), dir.path, 3);
  const auto good = read_bytes(file);
  auto b = compile<cpu>(train_model);
  scramble(b.vars());
  const auto before = snapshot(b.vars());
  const auto bad = dir.path / "bad.kiln";

  SUBCASE("a flipped byte in a tensor's data names the tensor") {
    const auto d = io::read_checkpoint_contents(file);
    const auto& m = d.tensors[1];
    REQUIRE(m.name == "adam/m");
    auto bytes = good;
    bytes[m.offset + 13] ^= 0x01;
    write_bytes(bad, bytes);
    const auto msg = message_of([&] { io::restore_checkpoint(b.vars(), bad); });
    CHECK(contains(msg, bad.string()));
    CHECK(contains(msg, "the data of tensor 'adam/m' (f64 [5]) fails its CRC check"));
    CHECK(snapshot(b.vars()) == before);
  }
  SUBCASE("every single corrupted byte is caught") {
    int missed = 0;
    for (std::size_t at = 0; at < good.size(); ++at) {
      auto bytes = good;
      bytes[at] ^= 0x5a;
      write_bytes(bad, bytes);
      const auto msg = message_of([&] { io::restore_checkpoint(b.vars(), bad); });
      if (msg == "(no kiln::error thrown)") ++missed;
    }
    CHECK(missed == 0);
    CHECK(snapshot(b.vars()) == before);
  }
  SUBCASE("every truncation is caught and says so") {
    int unclear = 0;
    for (std::size_t length = 0; length < good.size(); ++length) {
      write_bytes(bad, std::vector<unsigned char>(good.begin(), good.begin() + std::ptrdiff_t(length)));
      const auto msg = message_of([&] { io::restore_checkpoint(b.vars(), bad); });
      if (!contains(msg, "is truncated")) {
        ++unclear;
        MESSAGE(length << ": " << msg);
      }
    }
    CHECK(unclear == 0);
    CHECK(snapshot(b.vars()) == before);
  }
  SUBCASE("header problems") {
    auto bytes = good;
    bytes[0] = 'X';
    write_bytes(bad, bytes);
    CHECK(contains(message_of([&] { io::restore_checkpoint(b.vars(), bad); }), "is not a kiln checkpoint (bad magic)"));
    bytes = good;
    bytes[8] = 2;
    write_bytes(bad, bytes);
    CHECK(contains(message_of([&] { io::restore_checkpoint(b.vars(), bad); }), "has format version 2; this build reads version 1"));
    bytes = good;
    bytes[16] ^= 1;  // the step
    write_bytes(bad, bytes);
    CHECK(contains(message_of([&] { io::restore_checkpoint(b.vars(), bad); }), "header CRC mismatch"));
    bytes = good;
    bytes.push_back(0);
    write_bytes(bad, bytes);
    CHECK(contains(message_of([&] { io::restore_checkpoint(b.vars(), bad); }), "1 unexpected bytes after its 6 tensors"));
    CHECK(contains(message_of([&] { io::restore_checkpoint(b.vars(), dir.path / "none.kiln"); }), "cannot open checkpoint"));
    CHECK(snapshot(b.vars()) == before);
  }
  SUBCASE("a record header byte names the tensor before it") {
    auto bytes = good;
    const auto d = io::read_checkpoint_contents(file);
    // Tensor 1's record starts after tensor 0's data CRC; byte 7 of it is reserved, so only the
    // record CRC can notice it.
    bytes[d.tensors[0].offset + d.tensors[0].bytes + 4 + 7] ^= 0x10;
    write_bytes(bad, bytes);
    const auto msg = message_of([&] { io::restore_checkpoint(b.vars(), bad); });
    CHECK(contains(msg, "CRC mismatch in the record header of tensor #1 (after 'dense/kernel')"));
  }
}

TEST_CASE("checkpoint.failed_save_leaves_the_previous_one") {
  temp_dir dir;
  auto a = compile<cpu>(train_model);
  set_special_values(a);
  const auto first = io::save_checkpoint(a.vars(), dir.path, 1);
  const auto first_bytes = read_bytes(first);
  const auto saved = snapshot(a.vars());

  // Change the state, then make the next save die mid-write: the file size limit stops write()
  // with EFBIG after a few hundred bytes, as a full disk or a kill would.
  a.variable<float>("dense/kernel").flat()[5] = 42.0f;
  a.variable<std::int64_t>("iterations").item() = 2;
  std::signal(SIGXFSZ, SIG_IGN);
  rlimit old{};
  REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
  auto fail_mid_write = [&](std::int64_t step) {
    rlimit small = old;
    small.rlim_cur = rlim_t(first_bytes.size() / 2);
    REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
    const auto msg = message_of([&] { io::save_checkpoint(a.vars(), dir.path, step, 1); });
    REQUIRE(setrlimit(RLIMIT_FSIZE, &old) == 0);
    return msg;
  };
  for (std::int64_t step : {2, 1}) {  // a new step, and overwriting the same step
    CAPTURE(step);
    const auto msg = fail_mid_write(step);
    CHECK(contains(msg, "writing checkpoint file"));
    CHECK(contains(msg, "File too large"));
    // Nothing new under a checkpoint name, no temporary left, the old file byte for byte.
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir.path)) names.push_back(entry.path().filename().string());
    CHECK(names == std::vector<std::string>{"ckpt-1.kiln"});
    CHECK(read_bytes(first) == first_bytes);
    CHECK(io::latest_checkpoint(dir.path) == first);
    auto b = compile<cpu>(train_model);
    CHECK(io::restore_checkpoint(b.vars(), first).step == 1);
    CHECK(snapshot(b.vars()) == saved);
  }

  // A temporary file left by a writer killed before its rename is not a checkpoint.
  auto partial = first_bytes;
  partial.resize(partial.size() / 3);
  write_bytes(dir.path / ".ckpt-5.kiln.tmp-12345", partial);
  CHECK(io::latest_checkpoint(dir.path) == first);
  const auto second = io::save_checkpoint(a.vars(), dir.path, 6, 5);
  CHECK(io::latest_checkpoint(dir.path) == second);
  auto c = compile<cpu>(train_model);
  CHECK(io::restore_checkpoint(c.vars(), second).step == 6);
  CHECK(c.variable<float>("dense/kernel").flat()[5] == 42.0f);

  // A directory that cannot be created: a clean error, the others untouched.
  write_bytes(dir.path / "plain_file", {1});
  const auto msg = message_of([&] { io::save_checkpoint(a.vars(), dir.path / "plain_file" / "sub", 1); });
  CHECK(contains(msg, "cannot create checkpoint directory"));
  CHECK(read_bytes(first) == first_bytes);
}
