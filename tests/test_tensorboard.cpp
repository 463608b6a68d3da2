// TensorBoard summaries (io/tensorboard.hpp, io/tfrecord.hpp, io/crc32c.hpp, io/png.hpp): the
// events files are read back by a decoder written here, independently of the writer: a bitwise
// CRC-32C, a generic protobuf wire parser, a PNG reader with a bitwise CRC-32 and zlib inflate.
// Checked: every record's framing CRCs, the file name, the file_version record, tags, steps,
// scalar values, histogram statistics and buckets (against TensorFlow's bucketing rule), image
// pixels, the text plugin tensor; flushing (periodic, by size, on close and destruction) and the
// errors (unwritable log dir, full disk, deleted file, bad arguments).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>
#include <zlib.h>

#include <io/tensorboard.hpp>

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// ---- independent decoder -------------------------------------------------------------------------

std::uint32_t crc32c_bitwise(const void* data, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint32_t crc = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ ((crc & 1u) ? 0x82F63B78u : 0u);
  }
  return crc ^ 0xFFFFFFFFu;
}
std::uint32_t crc32c_bitwise(std::string_view s) { return crc32c_bitwise(s.data(), s.size()); }
std::uint32_t tf_mask(std::uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u; }

// PNG's CRC-32 (ISO-HDLC, reflected 0xEDB88320), bit by bit.
std::uint32_t crc32_bitwise(std::string_view s) {
  std::uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char c : s) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ ((crc & 1u) ? 0xEDB88320u : 0u);
  }
  return crc ^ 0xFFFFFFFFu;
}

std::uint64_t read_le(std::string_view s, std::size_t at, int bytes) {
  std::uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | std::uint8_t(s[at + std::size_t(i)]);
  return v;
}
std::uint32_t read_be32(std::string_view s, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | std::uint8_t(s[at + std::size_t(i)]);
  return v;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot open " << p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Splits a TFRecord file into its payloads; every length CRC and data CRC must match.
std::vector<std::string> read_records(const std::string& file) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < file.size()) {
    REQUIRE_MESSAGE(file.size() - at >= 12, "truncated record header at byte " << at);
    const std::uint64_t len = read_le(file, at, 8);
    const auto len_crc = std::uint32_t(read_le(file, at + 8, 4));
    CHECK_MESSAGE(len_crc == tf_mask(crc32c_bitwise(file.data() + at, 8)), "length CRC of record " << out.size());
    REQUIRE_MESSAGE(file.size() - at - 12 >= len + 4, "truncated record " << out.size());
    std::string data = file.substr(at + 12, std::size_t(len));
    const auto data_crc = std::uint32_t(read_le(file, at + 12 + std::size_t(len), 4));
    CHECK_MESSAGE(data_crc == tf_mask(crc32c_bitwise(data)), "data CRC of record " << out.size());
    out.push_back(std::move(data));
    at += 12 + std::size_t(len) + 4;
  }
  return out;
}

// A protobuf message as its raw fields, in order.
struct pb_field {
  std::uint32_t number = 0;
  int wire = -1;
  std::uint64_t scalar = 0;  // varint, fixed64 or fixed32 payload
  std::string bytes;         // length-delimited payload
};
struct pb_message {
  std::vector<pb_field> fields;

  std::vector<const pb_field*> all(std::uint32_t n) const {
    std::vector<const pb_field*> r;
    for (const auto& f : fields)
      if (f.number == n) r.push_back(&f);
    return r;
  }
  bool has(std::uint32_t n) const { return !all(n).empty(); }
  const pb_field& one(std::uint32_t n, int wire) const {
    auto r = all(n);
    REQUIRE_MESSAGE(r.size() == 1, "field " << n << " occurs " << r.size() << " times");
    REQUIRE_MESSAGE(r[0]->wire == wire, "field " << n << " has wire type " << r[0]->wire << ", expected " << wire);
    return *r[0];
  }
  double f64(std::uint32_t n) const {
    double d;
    std::uint64_t v = one(n, 1).scalar;
    std::memcpy(&d, &v, 8);
    return d;
  }
  float f32(std::uint32_t n) const {
    float f;
    auto v = std::uint32_t(one(n, 5).scalar);
    std::memcpy(&f, &v, 4);
    return f;
  }
  std::int64_t i64(std::uint32_t n) const { return std::int64_t(one(n, 0).scalar); }
  // proto3 leaves a field at its default out of the wire
  std::int64_t i64_or_zero(std::uint32_t n) const { return has(n) ? i64(n) : 0; }
  std::string str(std::uint32_t n) const { return one(n, 2).bytes; }
};

pb_message parse_pb(std::string_view s) {
  pb_message m;
  std::size_t at = 0;
  auto varint = [&] {
    std::uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      REQUIRE_MESSAGE(at < s.size(), "varint runs past the end");
      REQUIRE_MESSAGE(shift < 64, "varint longer than 10 bytes");
      const auto b = std::uint8_t(s[at++]);
      v |= std::uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
  };
  while (at < s.size()) {
    const std::uint64_t key = varint();
    pb_field f;
    f.number = std::uint32_t(key >> 3);
    f.wire = int(key & 7);
    REQUIRE(f.number > 0);
    switch (f.wire) {
      case 0: f.scalar = varint(); break;
      case 1:
        REQUIRE(s.size() - at >= 8);
        f.scalar = read_le(s, at, 8);
        at += 8;
        break;
      case 5:
        REQUIRE(s.size() - at >= 4);
        f.scalar = read_le(s, at, 4);
        at += 4;
        break;
      case 2: {
        const std::uint64_t len = varint();
        REQUIRE_MESSAGE(s.size() - at >= len, "length-delimited field " << f.number << " runs past the end");
        f.bytes = std::string(s.substr(at, std::size_t(len)));
        at += std::size_t(len);
        break;
      }
      default: FAIL("unexpected wire type " << f.wire << " for field " << f.number);
    }
    m.fields.push_back(std::move(f));
  }
  return m;
}
pb_message sub(const pb_message& m, std::uint32_t n) { return parse_pb(m.str(n)); }
std::vector<double> packed_doubles(const pb_message& m, std::uint32_t n) {
  const std::string b = m.str(n);
  REQUIRE(b.size() % 8 == 0);
  std::vector<double> r(b.size() / 8);
  for (std::size_t i = 0; i < r.size(); ++i) {
    std::uint64_t v = read_le(b, 8 * i, 8);
    std::memcpy(&r[i], &v, 8);
  }
  return r;
}

// One summary event as the test sees it.
struct summary_event {
  double wall_time = 0;
  std::int64_t step = 0;
  std::string tag;
  pb_message value;
};

struct events_file {
  std::vector<std::string> records;
  pb_message first;
  std::vector<summary_event> summaries;
};

events_file decode_events(const fs::path& p) {
  events_file f;
  f.records = read_records(slurp(p));
  REQUIRE(!f.records.empty());
  f.first = parse_pb(f.records[0]);
  for (std::size_t i = 1; i < f.records.size(); ++i) {
    const pb_message ev = parse_pb(f.records[i]);
    summary_event s;
    s.wall_time = ev.f64(1);
    s.step = ev.i64_or_zero(2);
    const pb_message summary = sub(ev, 5);
    REQUIRE(summary.all(1).size() == 1);
    s.value = sub(summary, 1);
    s.tag = s.value.str(1);
    f.summaries.push_back(std::move(s));
  }
  return f;
}

// PNG reader: checks the signature, every chunk CRC, IHDR and IEND; inflates and unfilters.
struct decoded_png {
  int width = 0, height = 0, channels = 0;
  std::vector<std::uint8_t> pixels;
};
decoded_png decode_png(std::string_view png) {
  REQUIRE(png.size() >= 8);
  REQUIRE(png.substr(0, 8) == std::string_view("\x89PNG\r\n\x1a\n", 8));
  std::size_t at = 8;
  decoded_png img;
  int bit_depth = 0, color_type = -1;
  std::string idat;
  std::vector<std::string> types;
  while (at < png.size()) {
    REQUIRE(png.size() - at >= 12);
    const std::uint32_t len = read_be32(png, at);
    REQUIRE(png.size() - at - 12 >= len);
    const std::string_view type_and_data = png.substr(at + 4, 4 + len);
    const std::string type(type_and_data.substr(0, 4));
    const std::string_view data = type_and_data.substr(4);
    CHECK_MESSAGE(read_be32(png, at + 8 + len) == crc32_bitwise(type_and_data), "CRC of PNG chunk " << type);
    types.push_back(type);
    if (type == "IHDR") {
      REQUIRE(len == 13);
      img.width = int(read_be32(data, 0));
      img.height = int(read_be32(data, 4));
      bit_depth = std::uint8_t(data[8]);
      color_type = std::uint8_t(data[9]);
      CHECK(data[10] == 0);  // deflate
      CHECK(data[11] == 0);  // filter method
      CHECK(data[12] == 0);  // no interlace
    } else if (type == "IDAT") {
      idat.append(data);
    }
    at += 12 + len;
  }
  REQUIRE(types.size() >= 3);
  CHECK(types.front() == "IHDR");
  CHECK(types.back() == "IEND");
  REQUIRE(bit_depth == 8);
  const std::map<int, int> channels_of_color_type = {{0, 1}, {4, 2}, {2, 3}, {6, 4}};
  REQUIRE(channels_of_color_type.count(color_type));
  img.channels = channels_of_color_type.at(color_type);
  const std::size_t stride = std::size_t(img.width) * std::size_t(img.channels);
  std::vector<std::uint8_t> raw((stride + 1) * std::size_t(img.height));
  uLongf raw_size = uLongf(raw.size());
  REQUIRE(::uncompress(raw.data(), &raw_size, reinterpret_cast<const Bytef*>(idat.data()), uLong(idat.size())) == Z_OK);
  REQUIRE(raw_size == raw.size());
  img.pixels.assign(stride * std::size_t(img.height), 0);
  const int bpp = img.channels;
  for (int y = 0; y < img.height; ++y) {
    const std::uint8_t filter = raw[std::size_t(y) * (stride + 1)];
    const std::uint8_t* in = &raw[std::size_t(y) * (stride + 1) + 1];
    std::uint8_t* row = &img.pixels[std::size_t(y) * stride];
    const std::uint8_t* up = y ? row - stride : nullptr;
    for (std::size_t x = 0; x < stride; ++x) {
      const int a = x >= std::size_t(bpp) ? row[x - std::size_t(bpp)] : 0;
      const int b = up ? up[x] : 0;
      const int c = (up && x >= std::size_t(bpp)) ? up[x - std::size_t(bpp)] : 0;
      int pred = 0;
      switch (filter) {
        case 0: pred = 0; break;
        case 1: pred = a; break;
        case 2: pred = b; break;
        case 3: pred = (a + b) / 2; break;
        case 4: {
          const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
          pred = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
          break;
        }
        default: FAIL("bad PNG filter type " << int(filter));
      }
      row[x] = std::uint8_t(in[x] + pred);
    }
  }
  return img;
}

// ---- helpers ---------------------------------------------------------------------------------------

struct temp_dir {
  fs::path path;
  temp_dir() {
    static int counter = 0;
    path = fs::temp_directory_path() / ("kiln_test_tensorboard_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string this_hostname() {
  char name[256] = {};
  REQUIRE(::gethostname(name, sizeof name - 1) == 0);
  return name;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// TensorFlow's default bucket limits, from the rule in tensorflow/core/lib/histogram/histogram.cc:
// 1e-12 growing by 10% while below 1e20, then DBL_MAX, mirrored, with 0 in the middle.
std::vector<double> reference_bucket_limits() {
  std::vector<double> pos;
  double v = 1.0e-12;
  while (v < 1.0e20) {
    pos.push_back(v);
    v *= 1.1;
  }
  pos.push_back(DBL_MAX);
  std::vector<double> r;
  for (std::size_t i = pos.size(); i-- > 0;) r.push_back(-pos[i]);
  r.push_back(0.0);
  for (double p : pos) r.push_back(p);
  return r;
}

// Checks a decoded HistogramProto against the values it summarizes.
void check_histogram(const pb_message& h, const std::vector<double>& values) {
  double mn = DBL_MAX, mx = -DBL_MAX, sum = 0, sq = 0;
  for (double v : values) {
    mn = std::min(mn, v);
    mx = std::max(mx, v);
    sum += v;
    sq += v * v;
  }
  CHECK(h.f64(1) == mn);
  CHECK(h.f64(2) == mx);
  CHECK(h.f64(3) == double(values.size()));
  auto near = [](double got, double want) { return std::isfinite(want) ? std::fabs(got - want) <= 1e-12 * std::fabs(want) : got == want; };
  CHECK_MESSAGE(near(h.f64(4), sum), h.f64(4) << " vs " << sum);
  CHECK_MESSAGE(near(h.f64(5), sq), h.f64(5) << " vs " << sq);
  const std::vector<double> limit = packed_doubles(h, 6), count = packed_doubles(h, 7);
  REQUIRE(limit.size() == count.size());
  REQUIRE(!limit.empty());
  CHECK(limit.back() == DBL_MAX);
  const std::vector<double> ref = reference_bucket_limits();
  double total = 0;
  for (std::size_t j = 0; j < limit.size(); ++j) {
    INFO("bucket " << j << " limit " << limit[j] << " count " << count[j]);
    const auto pos = std::find(ref.begin(), ref.end(), limit[j]);
    REQUIRE_MESSAGE(pos != ref.end(), "limit is not one of TensorFlow's default limits");
    const double lo = j ? limit[j - 1] : -DBL_MAX;
    if (j) CHECK(limit[j] > lo);
    // bucket j holds the values in [previous limit, limit)
    double in_range = 0;
    for (double v : values) in_range += (v >= lo && v < limit[j]) || (j + 1 == limit.size() && v == DBL_MAX);
    CHECK(count[j] == in_range);
    if (count[j] > 0) {
      // a non-empty bucket is exactly one default bucket: 10% resolution is kept
      const double default_lower = pos == ref.begin() ? -DBL_MAX : *(pos - 1);
      CHECK(lo == default_lower);
    } else if (j) {
      CHECK_MESSAGE(count[j - 1] > 0, "runs of empty buckets are merged into one");
    }
    total += count[j];
  }
  CHECK(total == double(values.size()));
}

}  // namespace

// ---- CRC-32C ---------------------------------------------------------------------------------------

TEST_CASE("tensorboard.crc32c.published_vectors") {
  CHECK(kiln::io::crc32c("123456789") == 0xE3069283u);
  CHECK(kiln::io::masked_crc32c("") == 0xA282EAD8u);
  // RFC 3720 (iSCSI) appendix B.4
  std::string zeros(32, '\0'), ones(32, '\xff'), up(32, '\0'), down(32, '\0');
  for (int i = 0; i < 32; ++i) {
    up[std::size_t(i)] = char(i);
    down[std::size_t(i)] = char(31 - i);
  }
  CHECK(kiln::io::crc32c(zeros) == 0x8A9136AAu);
  CHECK(kiln::io::crc32c(ones) == 0x62A8AB43u);
  CHECK(kiln::io::crc32c(up) == 0x46DD794Eu);
  CHECK(kiln::io::crc32c(down) == 0x113FDB5Cu);
  MESSAGE("crc32c implementation: " << std::string(kiln::io::crc32c_implementation()));
}

TEST_CASE("tensorboard.crc32c.every_length_and_alignment_matches_bitwise") {
  std::string buf(600, '\0');
  std::uint32_t s = 12345;
  for (auto& c : buf) c = char((s = s * 1103515245u + 12345u) >> 16);
  for (std::size_t off = 0; off < 8; ++off)
    for (std::size_t n = 0; n <= 300; n += (n < 40 ? 1 : 13)) {
      INFO("offset " << off << " length " << n);
      const std::uint32_t want = crc32c_bitwise(buf.data() + off, n);
      REQUIRE(kiln::io::crc32c(buf.data() + off, n) == want);
      REQUIRE(~kiln::io::detail::crc32c_update_portable(~0u, reinterpret_cast<const unsigned char*>(buf.data() + off), n) ==
              want);
#ifdef KILN_CRC32C_X86
      if (kiln::io::detail::cpu_has_sse42())
        REQUIRE(~kiln::io::detail::crc32c_update_sse42(~0u, reinterpret_cast<const unsigned char*>(buf.data() + off), n) ==
                want);
#endif
      // continuing a CRC over a split gives the CRC of the whole
      const std::size_t cut = n / 3;
      REQUIRE(kiln::io::crc32c(buf.data() + off + cut, n - cut, kiln::io::crc32c(buf.data() + off, cut)) == want);
    }
}

TEST_CASE("tensorboard.crc32c.mask_roundtrip") {
  for (std::uint32_t c : {0u, 1u, 0xE3069283u, 0xFFFFFFFFu, 0x80000000u}) {
    CHECK(kiln::io::mask_crc32c(c) == tf_mask(c));
    CHECK(kiln::io::unmask_crc32c(kiln::io::mask_crc32c(c)) == c);
  }
}

// ---- TFRecord framing ------------------------------------------------------------------------------

TEST_CASE("tensorboard.tfrecord.framing") {
  std::string file;
  kiln::io::append_tfrecord(file, "hello");
  kiln::io::append_tfrecord(file, "");
  kiln::io::append_tfrecord(file, std::string(1000, 'x'));
  CHECK(file.size() == (5 + 16) + 16 + (1000 + 16));
  CHECK(read_le(file, 0, 8) == 5);
  const auto records = read_records(file);
  REQUIRE(records.size() == 3);
  CHECK(records[0] == "hello");
  CHECK(records[1].empty());
  CHECK(records[2] == std::string(1000, 'x'));
}

// ---- the events file -------------------------------------------------------------------------------

TEST_CASE("tensorboard.writer.file_name_and_version_record") {
  temp_dir dir;
  const fs::path logdir = dir.path / "nested" / "run1";  // created, parents included
  const double before = now_seconds();
  fs::path path;
  {
    kiln::summary_writer w(logdir);
    path = w.path();
    CHECK(w.logdir() == logdir);
  }
  const double after = now_seconds();
  CHECK(path.parent_path() == logdir);
  const std::string name = path.filename().string();
  // events.out.tfevents.<10 digits>.<hostname>
  const std::string prefix = "events.out.tfevents.";
  REQUIRE_MESSAGE(name.starts_with(prefix), name);
  const std::string digits = name.substr(prefix.size(), 10);
  REQUIRE_MESSAGE(name.size() > prefix.size() + 11, name);
  CHECK(std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }));
  CHECK(name[prefix.size() + 10] == '.');
  const double stamp = std::stod(digits);
  CHECK(stamp >= std::floor(before));
  CHECK(stamp <= after);
  CHECK(name.substr(prefix.size() + 11) == this_hostname());

  const events_file f = decode_events(path);
  CHECK(f.records.size() == 1);
  CHECK(f.first.str(3) == "brain.Event:2");
  CHECK(f.first.f64(1) >= before);
  CHECK(f.first.f64(1) <= after);
  CHECK(!f.first.has(5));
}

TEST_CASE("tensorboard.writer.two_writers_in_one_second_get_two_files") {
  temp_dir dir;
  kiln::summary_writer a(dir.path), b(dir.path), c(dir.path, {.filename_suffix = ".v2"});
  CHECK(a.path() != b.path());
  CHECK(b.path().filename().string().find("tfevents") != std::string::npos);
  CHECK(c.path().filename().string().ends_with(".v2"));
  a.scalar("only_in_a", 1.0, 0);
  a.close();
  b.close();
  CHECK(decode_events(a.path()).summaries.size() == 1);
  CHECK(decode_events(b.path()).summaries.empty());
}

TEST_CASE("tensorboard.writer.scalars") {
  temp_dir dir;
  const std::vector<std::pair<std::int64_t, double>> points = {{0, 0.0}, {1, 2.5}, {2, -1.25}, {10, 1e-30},
                                                               {300, 0.1}, {1LL << 40, 3.0e38}, {-7, -0.0}};
  fs::path path;
  {
    kiln::summary_writer w(dir.path);
    for (auto [step, value] : points) w.scalar("loss/train", value, step);
    w.scalar("accuracy", 0.875, 5);
    path = w.path();
  }
  const events_file f = decode_events(path);
  REQUIRE(f.summaries.size() == points.size() + 1);
  for (std::size_t i = 0; i < points.size(); ++i) {
    INFO("point " << i);
    const auto& s = f.summaries[i];
    CHECK(s.tag == "loss/train");
    CHECK(s.step == points[i].first);
    CHECK(s.value.f32(2) == float(points[i].second));
    CHECK(std::signbit(s.value.f32(2)) == std::signbit(points[i].second));
    CHECK(s.wall_time >= f.first.f64(1));
  }
  CHECK(f.summaries.back().tag == "accuracy");
  CHECK(f.summaries.back().step == 5);
  CHECK(f.summaries.back().value.f32(2) == 0.875f);
  for (std::size_t i = 1; i < f.summaries.size(); ++i) CHECK(f.summaries[i].wall_time >= f.summaries[i - 1].wall_time);
}

TEST_CASE("tensorboard.writer.histograms") {
  temp_dir dir;
  std::vector<float> weights;
  std::uint32_t s = 7;
  for (int i = 0; i < 2000; ++i) {
    s = s * 1664525u + 1013904223u;
    weights.push_back(float((double(s >> 8) / double(1 << 24) - 0.5) * 0.2));
  }
  const std::vector<double> limits = reference_bucket_limits();
  const double at_limit = limits[limits.size() / 2 + 1];  // 1e-12 itself: first value of its bucket
  std::vector<double> mixed = {0.0, -0.0, 1.0, -1.0, 1e-13, -1e-13, at_limit, 3.5e15, -2e19, 2e25, DBL_MAX, -DBL_MAX, 1.1, 1.1};
  const std::vector<double> single = {42.0};
  fs::path path;
  {
    kiln::summary_writer w(dir.path);
    w.histogram("dense/kernel", std::span<float>(weights), 3);
    w.histogram("mixed", mixed, 4);
    w.histogram("single", std::array<double, 1>{42.0}, 5);
    path = w.path();
  }
  const events_file f = decode_events(path);
  REQUIRE(f.summaries.size() == 3);
  CHECK(f.summaries[0].tag == "dense/kernel");
  CHECK(f.summaries[0].step == 3);
  check_histogram(sub(f.summaries[0].value, 5), std::vector<double>(weights.begin(), weights.end()));
  CHECK(f.summaries[1].tag == "mixed");
  CHECK(f.summaries[1].step == 4);
  check_histogram(sub(f.summaries[1].value, 5), mixed);
  CHECK(f.summaries[2].step == 5);
  const pb_message one = sub(f.summaries[2].value, 5);
  check_histogram(one, single);
  // 42 sits in one 10%-wide bucket; the empty runs on either side collapse to one bucket each
  CHECK(packed_doubles(one, 7) == std::vector<double>{0.0, 1.0, 0.0});
}

TEST_CASE("tensorboard.writer.images") {
  temp_dir dir;
  const int H = 5, W = 7;
  std::vector<std::uint8_t> rgb(std::size_t(H * W * 3)), gray(std::size_t(H * W)), rgba(std::size_t(H * W * 4)),
      ga(std::size_t(H * W * 2));
  for (std::size_t i = 0; i < rgb.size(); ++i) rgb[i] = std::uint8_t(i * 37 + 11);
  for (std::size_t i = 0; i < gray.size(); ++i) gray[i] = std::uint8_t(i * i);
  for (std::size_t i = 0; i < rgba.size(); ++i) rgba[i] = std::uint8_t(255 - i * 3);
  for (std::size_t i = 0; i < ga.size(); ++i) ga[i] = std::uint8_t(i * 101);
  std::vector<std::uint8_t> big(std::size_t(300 * 200 * 3));  // several zlib blocks
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = std::uint8_t((i / 3) % 200 + (i % 3) * 20);
  fs::path path;
  {
    kiln::summary_writer w(dir.path);
    w.image("rgb", H, W, 3, rgb.data(), 1);
    w.image("gray", H, W, 1, gray.data(), 2);
    w.image("rgba", H, W, 4, rgba.data(), 3);
    w.image("gray_alpha", H, W, 2, ga.data(), 4);
    w.image("big", 300, 200, 3, big.data(), 5);
    path = w.path();
  }
  const events_file f = decode_events(path);
  REQUIRE(f.summaries.size() == 5);
  const std::vector<std::tuple<std::string, int, int, int, const std::vector<std::uint8_t>*>> want = {
      {"rgb", H, W, 3, &rgb}, {"gray", H, W, 1, &gray}, {"rgba", H, W, 4, &rgba}, {"gray_alpha", H, W, 2, &ga},
      {"big", 300, 200, 3, &big}};
  for (std::size_t i = 0; i < want.size(); ++i) {
    const auto& [tag, h, w, c, pixels] = want[i];
    INFO(tag);
    CHECK(f.summaries[i].tag == tag);
    CHECK(f.summaries[i].step == std::int64_t(i + 1));
    const pb_message img = sub(f.summaries[i].value, 4);
    CHECK(img.i64(1) == h);
    CHECK(img.i64(2) == w);
    CHECK(img.i64(3) == c);  // colorspace: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA
    const decoded_png png = decode_png(img.str(4));
    CHECK(png.height == h);
    CHECK(png.width == w);
    CHECK(png.channels == c);
    CHECK(png.pixels == *pixels);
  }
}

TEST_CASE("tensorboard.writer.filter_grid") {
  // kernel [kh=2, kw=3, in=2, out=3]: 6 tiles on a 3x2 grid
  const int kh = 2, kw = 3, in = 2, out = 3, zoom = 2, border = 1;
  std::vector<float> k(std::size_t(kh * kw * in * out));
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = float(std::sin(double(i) * 1.7) * 0.3);
  const auto [lo, hi] = std::minmax_element(k.begin(), k.end());
  const kiln::image_u8 img = kiln::filter_grid(std::span<const float>(k), kh, kw, in, out, zoom, border);
  const int cols = 3, rows = 2, th = kh * zoom, tw = kw * zoom;
  REQUIRE(img.channels == 1);
  REQUIRE(img.height == rows * th + (rows - 1) * border);
  REQUIRE(img.width == cols * tw + (cols - 1) * border);
  std::vector<int> want(std::size_t(img.height * img.width), 0);
  for (int o = 0; o < out; ++o)
    for (int i = 0; i < in; ++i) {
      const int t = o * in + i, top = (t / cols) * (th + border), left = (t % cols) * (tw + border);
      for (int y = 0; y < th; ++y)
        for (int x = 0; x < tw; ++x) {
          const double v = k[std::size_t(((y / zoom) * kw + x / zoom) * in * out + i * out + o)];
          want[std::size_t((top + y) * img.width + left + x)] = int(std::lround((v - *lo) / (*hi - *lo) * 255.0));
        }
    }
  CHECK(std::vector<int>(img.pixels.begin(), img.pixels.end()) == want);
  CHECK(*std::max_element(img.pixels.begin(), img.pixels.end()) == 255);

  // the first conv layer of the seed CNN: [2, 2, 1, 32]
  std::vector<double> first(2 * 2 * 1 * 32, 0.25);
  const kiln::image_u8 flat = kiln::filter_grid(first, 2, 2, 1, 32);
  CHECK(flat.width == 6 * 2 + 5);
  CHECK(flat.height == 6 * 2 + 5);
  CHECK(flat.pixels[0] == 128);  // constant kernel: mid-gray

  temp_dir dir;
  fs::path path;
  {
    kiln::summary_writer w(dir.path);
    w.image("conv1/filters", img, 9);
    path = w.path();
  }
  const events_file f = decode_events(path);
  REQUIRE(f.summaries.size() == 1);
  const decoded_png png = decode_png(sub(f.summaries[0].value, 4).str(4));
  CHECK(png.pixels == img.pixels);

  CHECK_THROWS_WITH_AS(kiln::filter_grid(k, 2, 2, 2, 3), doctest::Contains("[2,2,2,3]"), kiln::error);
  k[3] = std::nanf("");
  CHECK_THROWS_AS(kiln::filter_grid(std::span<const float>(k), kh, kw, in, out), kiln::error);
}

TEST_CASE("tensorboard.writer.text") {
  temp_dir dir;
  const std::string md = "# run\n* batch **64**\n* lr 1e-3 \xc3\xa9\n";
  fs::path path;
  {
    kiln::summary_writer w(dir.path);
    w.text("config", md, 0);
    w.text("notes", "", 12);
    path = w.path();
  }
  const events_file f = decode_events(path);
  REQUIRE(f.summaries.size() == 2);
  const std::vector<std::string> texts = {md, ""};
  for (std::size_t i = 0; i < 2; ++i) {
    const auto& s = f.summaries[i];
    CHECK(s.tag == (i ? "notes" : "config"));
    CHECK(s.step == (i ? 12 : 0));
    const pb_message tensor = sub(s.value, 8);
    CHECK(tensor.i64(1) == 7);  // DT_STRING
    CHECK(sub(tensor, 2).fields.empty());  // scalar shape: no dims
    CHECK(tensor.str(8) == texts[i]);
    const pb_message metadata = sub(s.value, 9);
    CHECK(sub(metadata, 1).str(1) == "text");
    CHECK(metadata.i64(4) == 2);  // DATA_CLASS_TENSOR
  }
}

// ---- flushing --------------------------------------------------------------------------------------

TEST_CASE("tensorboard.flush.on_close_and_destruction") {
  temp_dir dir;
  const kiln::summary_writer_options lazy{.flush_interval = std::chrono::hours(1)};
  fs::path p1, p2;
  {
    kiln::summary_writer w(dir.path / "a", lazy);
    p1 = w.path();
    const auto header = fs::file_size(p1);
    CHECK(header > 0);  // the version record is on disk at once
    for (int i = 0; i < 10; ++i) w.scalar("x", i, i);
    CHECK(fs::file_size(p1) == header);  // buffered
    CHECK(w.pending_bytes() > 0);
    w.flush();
    CHECK(w.pending_bytes() == 0);
    CHECK(decode_events(p1).summaries.size() == 10);
    w.scalar("x", 10, 10);
    w.close();
    CHECK(decode_events(p1).summaries.size() == 11);
    CHECK_THROWS_WITH_AS(w.scalar("x", 11, 11), doctest::Contains("closed"), kiln::error);
    w.close();  // twice is fine
  }
  {
    kiln::summary_writer w(dir.path / "b", lazy);
    p2 = w.path();
    for (int i = 0; i < 5; ++i) w.text("t", "line " + std::to_string(i), i);
  }
  const events_file f = decode_events(p2);
  REQUIRE(f.summaries.size() == 5);
  CHECK(sub(f.summaries[4].value, 8).str(8) == "line 4");
}

TEST_CASE("tensorboard.flush.periodic") {
  temp_dir dir;
  {
    kiln::summary_writer w(dir.path / "every", {.flush_interval = std::chrono::milliseconds(0)});
    for (int i = 0; i < 3; ++i) {
      w.scalar("x", i, i);
      CHECK(decode_events(w.path()).summaries.size() == std::size_t(i + 1));
    }
  }
  {
    kiln::summary_writer w(dir.path / "interval", {.flush_interval = std::chrono::milliseconds(400)});
    const auto header = fs::file_size(w.path());
    w.scalar("x", 1, 1);
    CHECK(fs::file_size(w.path()) == header);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    CHECK(fs::file_size(w.path()) == header);  // checked on write: nothing happens while idle
    w.scalar("x", 2, 2);
    CHECK(decode_events(w.path()).summaries.size() == 2);
  }
  {
    kiln::summary_writer w(dir.path / "by_size", {.flush_interval = std::chrono::hours(1), .max_pending_bytes = 4096});
    std::size_t written = 0;
    for (int i = 0; i < 200 && written == 0; ++i) {
      w.text("t", std::string(100, 'a'), i);
      written = decode_events(w.path()).summaries.size();
    }
    CHECK(written > 0);
    CHECK(w.pending_bytes() < 4096);
  }
}

// ---- errors ----------------------------------------------------------------------------------------

TEST_CASE("tensorboard.errors.unwritable_log_dir") {
  temp_dir dir;
  fs::create_directories(dir.path);
  const fs::path file = dir.path / "a_file";
  std::ofstream(file) << "x";
  // a directory below a regular file cannot be created, even by root
  const fs::path bad = file / "logs";
  CHECK_THROWS_WITH_AS(kiln::summary_writer{bad}, doctest::Contains(bad.string().c_str()), kiln::error);
  CHECK_THROWS_WITH_AS(kiln::summary_writer{file}, doctest::Contains(file.string().c_str()), kiln::error);
}

// The full-disk case is test_tensorboard_full_disk.cpp (its own executable: SKIP without /dev/full).

TEST_CASE("tensorboard.errors.log_dir_removed") {
  temp_dir dir;
  kiln::summary_writer w(dir.path / "run", {.flush_interval = std::chrono::hours(1)});
  const std::string path = w.path().string();
  w.scalar("x", 1, 1);
  fs::remove_all(dir.path / "run");
  CHECK_THROWS_WITH_AS(w.flush(), doctest::Contains(path.c_str()), kiln::error);
  // after a failed flush, every write retries and reports, whatever the interval
  CHECK_THROWS_WITH_AS(w.scalar("x", 2, 2), doctest::Contains("deleted"), kiln::error);
}

TEST_CASE("tensorboard.errors.bad_values") {
  temp_dir dir;
  kiln::summary_writer w(dir.path);
  std::vector<float> nan_in = {1.0f, std::nanf(""), 2.0f};
  CHECK_THROWS_WITH_AS(w.histogram("layer/w", std::span<const float>(nan_in), 0), doctest::Contains("'layer/w'"), kiln::error);
  CHECK_THROWS_WITH_AS(w.histogram("empty", std::vector<double>{}, 0), doctest::Contains("no values"), kiln::error);
  std::vector<double> inf_in = {INFINITY};
  CHECK_THROWS_WITH_AS(w.histogram("inf", inf_in, 0), doctest::Contains("infinite"), kiln::error);
  std::uint8_t px[4] = {};
  CHECK_THROWS_WITH_AS(w.image("img", 2, 2, 5, px, 0), doctest::Contains("channels"), kiln::error);
  CHECK_THROWS_WITH_AS(w.image("img", 0, 2, 1, px, 0), doctest::Contains("'img'"), kiln::error);
  CHECK_THROWS_AS(w.image("img", 2, 2, 1, nullptr, 0), kiln::error);
  kiln::image_u8 wrong{.height = 3, .width = 3, .channels = 1, .pixels = std::vector<std::uint8_t>(4)};
  CHECK_THROWS_WITH_AS(w.image("img", wrong, 0), doctest::Contains("4 bytes for 3x3x1"), kiln::error);
  w.close();
  CHECK(decode_events(w.path()).summaries.empty());  // nothing half-written
}

TEST_CASE("tensorboard.writer.threads_share_one_writer") {
  temp_dir dir;
  fs::path path;
  {
    kiln::summary_writer w(dir.path, {.flush_interval = std::chrono::milliseconds(1), .max_pending_bytes = 512});
    path = w.path();
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&w, t] {
        for (int i = 0; i < 100; ++i) w.scalar("thread" + std::to_string(t), t * 1000 + i, i);
      });
    for (auto& th : threads) th.join();
  }
  const events_file f = decode_events(path);  // every record intact: CRCs checked inside
  REQUIRE(f.summaries.size() == 400);
  std::map<std::string, std::vector<std::int64_t>> steps;
  for (const auto& s : f.summaries) {
    steps[s.tag].push_back(s.step);
    CHECK(s.value.f32(2) == float(std::stoi(s.tag.substr(6)) * 1000 + s.step));
  }
  REQUIRE(steps.size() == 4);
  for (auto& [tag, st] : steps) {
    CHECK(st.size() == 100);
    CHECK(std::is_sorted(st.begin(), st.end()));  // each thread's own order is kept
  }
}
