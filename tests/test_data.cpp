// IDX reading (plain and gzip, every error case) and the input pipeline: split, shuffle, batching,
// map stages against hand-written references, determinism across prefetch and worker counts,
// exceptions crossing from the workers, allocation-free steady state, and feeding an executor.
// The real Fashion-MNIST files are checked in test_fashion_mnist_files.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <data/fashion_mnist.hpp>
#include <data/pipeline.hpp>
#include <io/idx.hpp>
#include <zlib.h>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <new>
#include <set>
#include "test_util.hpp"

#include "allocation_counter.hpp"  // g_allocations

using namespace kiln;
namespace fs = std::filesystem;
using kt::contains;
using kt::message_of;

namespace {

// A fresh directory under /tmp, removed at scope exit.
struct temp_dir : kt::temp_dir {
  temp_dir() : kt::temp_dir("data") {}
};

std::vector<unsigned char> idx_bytes(std::uint32_t magic, std::vector<std::uint32_t> dims, const std::vector<unsigned char>& data) {
  std::vector<unsigned char> out;
  auto be32 = [&](std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<unsigned char>(v >> s));
  };
  be32(magic);
  for (auto d : dims) be32(d);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

void write_plain(const fs::path& p, const std::vector<unsigned char>& bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

void write_gzip(const fs::path& p, const std::vector<unsigned char>& bytes) {
  gzFile f = gzopen(p.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), unsigned(bytes.size())) == int(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

std::vector<unsigned char> read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::vector<unsigned char> random_bytes(std::size_t n, std::uint64_t seed) {
  auto v = kt::integers<int>(n, 0, 255, seed);
  return {v.begin(), v.end()};
}



}  // namespace

// ---- IDX ------------------------------------------------------------------------------------------

TEST_CASE("data.idx.round_trip.plain_and_gzip") {
  temp_dir dir;
  const auto pixels = random_bytes(7 * 5 * 4, 1);
  const auto labels = random_bytes(7, 2);
  const auto images_file = idx_bytes(0x803, {7, 5, 4}, pixels), labels_file = idx_bytes(0x801, {7}, labels);
  write_plain(dir.path / "im", images_file);
  write_plain(dir.path / "lb", labels_file);
  write_gzip(dir.path / "im.gz", images_file);
  write_gzip(dir.path / "lb.gz", labels_file);
  for (const char* suffix : {"", ".gz"}) {
    CAPTURE(suffix);
    const auto set = io::read_idx_labeled((dir.path / (std::string("im") + suffix)).string(), (dir.path / (std::string("lb") + suffix)).string());
    CHECK(set.images.count == 7);
    CHECK(set.images.rows == 5);
    CHECK(set.images.cols == 4);
    CHECK(set.images.pixels == pixels);
    CHECK(set.labels.count == 7);
    CHECK(set.labels.values == labels);
    CHECK(set.images.image(3)[2 * 4 + 1] == pixels[3 * 20 + 2 * 4 + 1]);
  }
  // An empty set is valid.
  write_gzip(dir.path / "empty.gz", idx_bytes(0x803, {0, 28, 28}, {}));
  const auto empty = io::read_idx_images((dir.path / "empty.gz").string());
  CHECK(empty.count == 0);
  CHECK(empty.rows == 28);
  CHECK(empty.pixels.empty());
}

TEST_CASE("data.idx.errors") {
  temp_dir dir;
  const auto pixels = random_bytes(7 * 5 * 4, 3);
  const auto full = idx_bytes(0x803, {7, 5, 4}, pixels);
  auto path = [&](const char* name) { return (dir.path / name).string(); };

  SUBCASE("missing file") {
    const auto m = message_of([&] { io::read_idx_images(path("nope.gz")); });
    CHECK(contains(m, path("nope.gz")));
    CHECK(contains(m, "no such file"));
  }
  SUBCASE("missing Fashion-MNIST names the Debian package") {
    const auto m = message_of([&] { io::load_fashion_mnist(dir.path); });
    CHECK(contains(m, "train-images-idx3-ubyte.gz"));
    CHECK(contains(m, "install the Debian package dataset-fashion-mnist"));
  }
  SUBCASE("bad magic: labels read as images, and not IDX at all") {
    write_plain(path("lb"), idx_bytes(0x801, {3}, {1, 2, 3}));
    auto m = message_of([&] { io::read_idx_images(path("lb")); });
    CHECK(contains(m, path("lb")));
    CHECK(contains(m, "bad magic 0x00000801, expected 0x00000803"));
    CHECK(contains(m, "rank 1"));
    write_gzip(path("text.gz"), {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'});
    m = message_of([&] { io::read_idx_labels(path("text.gz")); });
    CHECK(contains(m, "bad magic 0x68656c6c, expected 0x00000801"));
  }
  SUBCASE("element type other than unsigned byte") {
    write_plain(path("float"), idx_bytes(0x00000D03, {1, 1, 1}, {0, 0, 0, 0}));
    const auto m = message_of([&] { io::read_idx_images(path("float")); });
    CHECK(contains(m, "element type 0x0d is not unsigned byte"));
  }
  SUBCASE("truncated data, plain and gzip") {
    const std::vector<unsigned char> cut(full.begin(), full.end() - 40);  // 100 of the 140 data bytes
    write_plain(path("cut"), cut);
    write_gzip(path("cut.gz"), cut);
    for (const char* name : {"cut", "cut.gz"}) {
      const auto m = message_of([&] { io::read_idx_images(path(name)); });
      CAPTURE(m);
      CHECK(contains(m, path(name)));
      CHECK(contains(m, "truncated"));
      CHECK(contains(m, "[7,5,4] = 140 bytes"));
      CHECK(contains(m, "only 100 follow"));
    }
  }
  SUBCASE("gzip stream cut in the middle") {
    write_gzip(path("whole.gz"), full);
    auto gz = read_bytes(path("whole.gz"));
    gz.resize(gz.size() / 2);
    write_plain(path("half.gz"), gz);
    const auto m = message_of([&] { io::read_idx_images(path("half.gz")); });
    CAPTURE(m);
    CHECK(contains(m, path("half.gz")));
    CHECK((contains(m, "truncated") || contains(m, "corrupt")));
  }
  SUBCASE("gzip CRC mismatch") {
    write_gzip(path("whole.gz"), full);
    auto gz = read_bytes(path("whole.gz"));
    gz[gz.size() - 8] ^= 0xff;  // the CRC-32 of the gzip trailer
    write_plain(path("badcrc.gz"), gz);
    const auto m = message_of([&] { io::read_idx_images(path("badcrc.gz")); });
    CAPTURE(m);
    CHECK(contains(m, "corrupt"));
    CHECK(contains(m, "incorrect data check"));
  }
  SUBCASE("header cut inside the dimensions") {
    write_plain(path("head"), std::vector<unsigned char>(full.begin(), full.begin() + 10));
    const auto m = message_of([&] { io::read_idx_images(path("head")); });
    CHECK(contains(m, "truncated inside its header (dimension 1 of 3)"));
  }
  SUBCASE("bytes after the data") {
    auto longer = full;
    longer.push_back(0);
    write_plain(path("long"), longer);
    const auto m = message_of([&] { io::read_idx_images(path("long")); });
    CHECK(contains(m, "bytes after the 140 bytes"));
  }
  SUBCASE("a huge declared count is a truncation, not an allocation") {
    write_plain(path("huge"), idx_bytes(0x803, {4000000, 1000, 1}, {1, 2, 3}));
    const auto m = message_of([&] { io::read_idx_images(path("huge")); });
    CHECK(contains(m, "truncated"));
  }
  SUBCASE("image and label counts differ") {
    write_plain(path("im"), full);
    write_plain(path("lb"), idx_bytes(0x801, {6}, random_bytes(6, 4)));
    const auto m = message_of([&] { io::read_idx_labeled(path("im"), path("lb")); });
    CHECK(contains(m, "count mismatch"));
    CHECK(contains(m, path("im") + " holds 7 images"));
    CHECK(contains(m, path("lb") + " holds 6 labels"));
  }
}

// ---- pipeline -------------------------------------------------------------------------------------

namespace {

// Sample i of shape [h, w, c] holds i * 1000 + element, label i: every value says where it came from.
data::dataset numbered(std::int64_t n, kiln::dims shape) {
  const std::int64_t e = shape.elements();
  std::vector<float> features(std::size_t(n * e));
  std::vector<std::int32_t> labels(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    labels[std::size_t(i)] = std::int32_t(i);
    for (std::int64_t k = 0; k < e; ++k) features[std::size_t(i * e + k)] = float(i * 1000 + k);
  }
  return data::dataset(std::move(features), shape, std::move(labels));
}

struct epoch_record {
  std::vector<std::int64_t> sizes;
  std::vector<std::int32_t> labels;
  std::vector<float> features;
  kiln::dims last_feature_dims{};
};

epoch_record run_epoch(data::pipeline& p, std::int64_t e) {
  epoch_record r;
  std::int64_t expected_index = 0;
  for (const data::batch& b : p.epoch(e)) {
    CHECK(b.epoch == e);
    CHECK(b.index == expected_index++);
    r.sizes.push_back(b.size);
    const auto x = b.features.as<float>();
    const auto y = b.labels.as<std::int32_t>();
    CHECK(x.shape()[0] == b.size);
    CHECK(y.shape() == kiln::dims{b.size});
    r.labels.insert(r.labels.end(), y.data(), y.data() + y.size());
    r.features.insert(r.features.end(), x.data(), x.data() + x.size());
    r.last_feature_dims = x.shape();
  }
  return r;
}

}  // namespace

TEST_CASE("data.pipeline.split") {
  const auto all = numbered(103, {2, 3, 1});
  const auto parts = all.split(0.2, 7);
  CHECK(parts.train.size() == 82);  // floor(103 * 0.8), as Keras' validation_split
  CHECK(parts.validation.size() == 21);
  std::set<std::int32_t> seen;
  for (std::int64_t i = 0; i < parts.train.size(); ++i) seen.insert(parts.train.label(i));
  for (std::int64_t i = 0; i < parts.validation.size(); ++i) seen.insert(parts.validation.label(i));
  CHECK(seen.size() == 103);  // disjoint and complete
  // Features travel with their labels.
  for (std::int64_t i = 0; i < parts.validation.size(); ++i)
    CHECK(parts.validation.features(i)[4] == float(parts.validation.label(i) * 1000 + 4));

  auto labels_of = [](const data::dataset& d) {
    std::vector<std::int32_t> v;
    for (std::int64_t i = 0; i < d.size(); ++i) v.push_back(d.label(i));
    return v;
  };
  CHECK(labels_of(all.split(0.2, 7).validation) == labels_of(parts.validation));
  CHECK(labels_of(all.split(0.2, 8).validation) != labels_of(parts.validation));
  // Random, not the tail: some validation sample comes from the first 82.
  const auto v = labels_of(parts.validation);
  CHECK(std::any_of(v.begin(), v.end(), [](std::int32_t l) { return l < 82; }));
  CHECK(all.split_count(10, 1).validation.size() == 10);
  CHECK(all.split(0.0, 1).validation.size() == 0);
  CHECK(contains(message_of([&] { all.split(1.5, 1); }), "not in [0, 1]"));
  CHECK(contains(message_of([&] { all.split_count(104, 1); }), "cannot split 104"));
}

TEST_CASE("data.pipeline.shuffle_and_batching") {
  const auto ds = numbered(103, {2, 3, 1});
  data::pipeline p(ds, {.batch_size = 32, .seed = 11});
  CHECK(p.batches_per_epoch() == 4);
  const auto e0 = run_epoch(p, 0), e1 = run_epoch(p, 1);
  CHECK(e0.sizes == std::vector<std::int64_t>{32, 32, 32, 7});  // partial last batch kept
  CHECK(e0.last_feature_dims == kiln::dims{7, 2, 3, 1});
  for (const auto* e : {&e0, &e1}) {
    std::vector<std::int32_t> sorted = e->labels;
    std::sort(sorted.begin(), sorted.end());
    std::vector<std::int32_t> identity(103);
    for (int i = 0; i < 103; ++i) identity[std::size_t(i)] = i;
    CHECK(sorted == identity);  // a permutation
    for (std::size_t s = 0; s < e->labels.size(); ++s)
      for (int k = 0; k < 6; ++k) CHECK(e->features[s * 6 + std::size_t(k)] == float(e->labels[s] * 1000 + k));
  }
  std::vector<std::int32_t> identity(103);
  for (int i = 0; i < 103; ++i) identity[std::size_t(i)] = i;
  CHECK(e0.labels != identity);
  CHECK(e0.labels != e1.labels);  // reshuffled per epoch

  // Same seed, same batches; another seed, another order.
  data::pipeline again(ds, {.batch_size = 32, .seed = 11});
  CHECK(run_epoch(again, 0).labels == e0.labels);
  CHECK(run_epoch(again, 1).labels == e1.labels);
  data::pipeline other(ds, {.batch_size = 32, .seed = 12});
  CHECK(run_epoch(other, 0).labels != e0.labels);

  // drop_remainder: three full batches of distinct samples.
  data::pipeline dropped(ds, {.batch_size = 32, .drop_remainder = true, .seed = 11});
  CHECK(dropped.batches_per_epoch() == 3);
  const auto d0 = run_epoch(dropped, 0);
  CHECK(d0.sizes == std::vector<std::int64_t>{32, 32, 32});
  CHECK(std::set<std::int32_t>(d0.labels.begin(), d0.labels.end()).size() == 96);

  // No shuffle: storage order, every epoch.
  data::pipeline ordered(ds, {.batch_size = 50, .shuffle = false});
  CHECK(run_epoch(ordered, 0).labels == identity);
  CHECK(run_epoch(ordered, 3).labels == identity);

  // Batch larger than the data: one partial batch, or none when dropped.
  data::pipeline big(ds, {.batch_size = 500});
  CHECK(run_epoch(big, 0).sizes == std::vector<std::int64_t>{103});
  data::pipeline none(ds, {.batch_size = 500, .drop_remainder = true});
  CHECK(run_epoch(none, 0).sizes.empty());
}

TEST_CASE("data.pipeline.deterministic_for_any_prefetch_and_workers") {
  const auto ds = numbered(203, {6, 5, 2});
  auto stages = [] {
    return std::vector<data::stage>{data::random_flip_left_right(3), data::central_crop(0.5), data::rescale(0.5f, 1.0f)};
  };
  std::vector<epoch_record> reference;
  {
    data::pipeline sync(ds, {.batch_size = 16, .seed = 5, .prefetch = 0}, stages());
    for (int e = 0; e < 3; ++e) reference.push_back(run_epoch(sync, e));
  }
  CHECK(reference[0].last_feature_dims == kiln::dims{203 % 16, 4, 3, 2});  // crop 0.5 of 6x5: start 1,1 -> 4x3
  struct config { int prefetch, workers; };
  for (config c : {config{1, 1}, config{2, 1}, config{4, 3}, config{8, 8}}) {
    CAPTURE(c.prefetch);
    CAPTURE(c.workers);
    data::pipeline p(ds, {.batch_size = 16, .seed = 5, .prefetch = c.prefetch, .workers = c.workers}, stages());
    for (int e = 0; e < 3; ++e) {
      const auto r = run_epoch(p, e);
      CHECK(r.labels == reference[std::size_t(e)].labels);
      CHECK(r.features == reference[std::size_t(e)].features);
      CHECK(r.sizes == reference[std::size_t(e)].sizes);
    }
  }
  // Leaving an epoch early and jumping ahead restarts the stream at the requested epoch.
  data::pipeline p(ds, {.batch_size = 16, .seed = 5, .prefetch = 3, .workers = 2}, stages());
  for (const auto& b : p.epoch(0)) {
    if (b.index == 2) break;
  }
  CHECK(run_epoch(p, 2).features == reference[2].features);
  CHECK(run_epoch(p, 0).features == reference[0].features);  // backwards too
}

TEST_CASE("data.pipeline.random_flip_left_right") {
  // [H=4, W=3, C=2]: the flipped sample is orig[y][W-1-x][c].
  const std::int64_t n = 2000;
  const auto ds = numbered(n, {4, 3, 2});
  auto flipped_of = [](std::int32_t id) {
    std::vector<float> out(24);
    for (int y = 0; y < 4; ++y)
      for (int x = 0; x < 3; ++x)
        for (int c = 0; c < 2; ++c) out[std::size_t((y * 3 + x) * 2 + c)] = float(id * 1000 + (y * 3 + (2 - x)) * 2 + c);
    return out;
  };
  auto flips = [&](data::pipeline& p, std::int64_t e) {
    const auto r = run_epoch(p, e);
    std::vector<char> flipped(std::size_t(n), 0);
    int neither = 0;
    for (std::size_t s = 0; s < r.labels.size(); ++s) {
      const std::int32_t id = r.labels[s];
      const std::vector<float> got(r.features.begin() + std::ptrdiff_t(s * 24), r.features.begin() + std::ptrdiff_t(s * 24 + 24));
      std::vector<float> original(24);
      for (int k = 0; k < 24; ++k) original[std::size_t(k)] = float(id * 1000 + k);
      if (got == flipped_of(id)) flipped[std::size_t(id)] = 1;
      else if (got != original) ++neither;
    }
    CHECK(neither == 0);
    return flipped;
  };
  data::pipeline p(ds, {.batch_size = 64, .seed = 9}, {data::random_flip_left_right()});
  const auto f0 = flips(p, 0), f1 = flips(p, 1);
  const auto count0 = std::count(f0.begin(), f0.end(), 1);
  CHECK(count0 > 900);  // p = 0.5 over 2000 samples: 1000 +- 22 (1 sigma)
  CHECK(count0 < 1100);
  CHECK(f0 != f1);      // drawn again each epoch
  // Keyed on the sample, not on its place in the batch: another batch size and order agree.
  data::pipeline q(ds, {.batch_size = 7, .seed = 9, .prefetch = 3, .workers = 2}, {data::random_flip_left_right()});
  CHECK(flips(q, 0) == f0);
  data::pipeline always(ds, {.batch_size = 100}, {data::random_flip_left_right(0, 1.0)});
  const auto fa = flips(always, 0);
  CHECK(std::count(fa.begin(), fa.end(), 1) == n);
  data::pipeline never(ds, {.batch_size = 100}, {data::random_flip_left_right(0, 0.0)});
  const auto fn = flips(never, 0);
  CHECK(std::count(fn.begin(), fn.end(), 1) == 0);
}

TEST_CASE("data.pipeline.central_crop") {
  auto crop_of = [](std::int64_t h, std::int64_t w, std::int64_t c, double fraction) {
    const auto ds = numbered(3, {h, w, c});
    data::pipeline p(ds, {.batch_size = 3, .shuffle = false}, {data::central_crop(fraction)});
    return std::pair(p.sample_shape(), run_epoch(p, 0));
  };
  // 5x4x1 at 0.6: rows start at floor((5 - 3) / 2) = 1 and keep 3; columns start at
  // floor((4 - 2.4) / 2) = 0 and keep 4.
  {
    const auto [shape, r] = crop_of(5, 4, 1, 0.6);
    CHECK(shape == kiln::dims{3, 4, 1});
    std::vector<float> want;
    for (int id = 0; id < 3; ++id)
      for (int y = 1; y < 4; ++y)
        for (int x = 0; x < 4; ++x) want.push_back(float(id * 1000 + y * 4 + x));
    CHECK(r.features == want);
  }
  // 28x28x2 at 0.5: start 7, keep 14; at 0.8: start floor(2.8) = 2, keep 24.
  for (auto [fraction, start, kept] : {std::tuple{0.5, 7, 14}, std::tuple{0.8, 2, 24}}) {
    const auto [shape, r] = crop_of(28, 28, 2, fraction);
    CHECK(shape == kiln::dims{kept, kept, 2});
    std::vector<float> want;
    for (int id = 0; id < 3; ++id)
      for (int y = start; y < start + kept; ++y)
        for (int x = start; x < start + kept; ++x)
          for (int c = 0; c < 2; ++c) want.push_back(float(id * 1000 + (y * 28 + x) * 2 + c));
    CHECK(r.features == want);
  }
  CHECK(crop_of(6, 6, 1, 1.0).first == kiln::dims{6, 6, 1});
  CHECK(contains(message_of([] { data::central_crop(0.0); }), "(0, 1]"));
  const auto flat = numbered(4, {12});
  CHECK(contains(message_of([&] { data::pipeline(flat, {}, {data::central_crop(0.5)}); }), "central_crop needs image samples"));
  CHECK(contains(message_of([&] { data::pipeline(flat, {}, {data::central_crop(0.5)}); }), "[12]"));
}

TEST_CASE("data.pipeline.normalization") {
  const auto ds = numbered(5, {2, 2});
  data::pipeline unit(ds, {.batch_size = 5, .shuffle = false}, {data::rescale(1.0f / 255, -0.5f)});
  data::pipeline standard(ds, {.batch_size = 5, .shuffle = false}, {data::normalize(100.0f, 4.0f)});
  const auto a = run_epoch(unit, 0), b = run_epoch(standard, 0);
  for (int id = 0; id < 5; ++id)
    for (int k = 0; k < 4; ++k) {
      const double x = id * 1000 + k;
      CHECK(a.features[std::size_t(id * 4 + k)] == doctest::Approx(x / 255.0 - 0.5).epsilon(1e-6));
      CHECK(b.features[std::size_t(id * 4 + k)] == doctest::Approx((x - 100.0) / 4.0).epsilon(1e-6));
    }
  CHECK(contains(message_of([] { data::normalize(0, 0); }), "positive stddev"));
}

TEST_CASE("data.pipeline.worker_exception_reaches_the_consumer") {
  const auto ds = numbered(100, {2, 2});
  data::stage faulty;
  faulty.name = "faulty";
  faulty.apply = [](const float* in, float* out, const kiln::dims& s, const data::sample_info& info) {
    if (info.epoch == 0 && info.storage_index == 50) throw kiln::error("faulty stage: sample 50");
    std::copy(in, in + s.elements(), out);
  };
  for (int prefetch : {0, 2}) {
    CAPTURE(prefetch);
    data::pipeline p(ds, {.batch_size = 10, .shuffle = false, .prefetch = prefetch, .workers = 2}, {faulty});
    p.begin_epoch(0);
    int delivered = 0;
    std::string caught;
    try {
      while (p.next()) ++delivered;
    } catch (const kiln::error& e) {
      caught = e.what();
    }
    CHECK(delivered == 5);  // batches 0..4; batch 5 holds sample 50
    CHECK(caught == "faulty stage: sample 50");
    CHECK_THROWS_AS(p.next(), kiln::error);  // stays failed until restarted
    CHECK(run_epoch(p, 1).labels.size() == 100);  // a new epoch restarts the workers
  }
  // Destroying a pipeline whose workers are blocked on a full queue joins them.
  {
    data::pipeline p(ds, {.batch_size = 10, .prefetch = 4, .workers = 3});
    p.begin_epoch(0);
    CHECK(p.next() != nullptr);
  }
  CHECK(contains(message_of([&] { data::pipeline(ds, {.batch_size = 0}); }), "batch_size must be positive"));
  CHECK(contains(message_of([&] {
                   data::pipeline p(ds, {});
                   p.next();
                 }),
                 "before begin_epoch"));
}

TEST_CASE("data.pipeline.steady_state_allocates_nothing") {
  const auto ds = numbered(4000, {8, 8, 1});
  data::pipeline p(ds, {.batch_size = 50, .seed = 1, .prefetch = 2, .workers = 2},
                   {data::random_flip_left_right(), data::central_crop(0.75), data::normalize(0.5f, 2.0f)});
  p.begin_epoch(0);
  double checksum = 0;
  for (int i = 0; i < 5; ++i) checksum += p.next()->features.as<float>().data()[0];
  const long before = g_allocations.load();
  for (int i = 5; i < 70; ++i) checksum += p.next()->features.as<float>().data()[0];  // of 80; the next epoch's order is made later
  const long during = g_allocations.load() - before;
  CHECK(during == 0);
  CHECK(std::isfinite(checksum));
}

TEST_CASE("data.pipeline.feeds_an_executor") {
  static constexpr auto model = [] {
    graph g;
    tensor x = g.placeholder("x", f32, {batch, 4, 2, 1});
    tensor y = g.placeholder("y", i32, {batch});
    g.output("row_sum", reduce_sum(x, {1, 2, 3}));
    g.output("label_twice", y * 2);
    return g;
  };
  auto ex = compile<cpu>(model);
  const auto ds = numbered(45, {6, 2, 1});
  data::pipeline p(ds, {.batch_size = 20, .seed = 2}, {data::central_crop(0.5)});  // 6x2 -> rows 1..4
  REQUIRE(p.sample_shape() == kiln::dims{4, 2, 1});
  int batches = 0;
  for (const data::batch& b : p.epoch(0)) {
    ++batches;
    const auto& out = ex.run({{"x", b.features}, {"y", b.labels}});
    const auto sums = out.get<float>("row_sum");
    const auto twice = out.get<std::int32_t>("label_twice");
    REQUIRE(sums.shape() == kiln::dims{b.size});
    const auto labels = b.labels.as<std::int32_t>();
    for (std::int64_t i = 0; i < b.size; ++i) {
      const std::int32_t id = labels.data()[i];
      double want = 0;  // rows 1..4 of the 6x2 sample: elements 2..9
      for (int k = 2; k < 10; ++k) want += id * 1000 + k;
      CHECK(sums.data()[i] == doctest::Approx(want).epsilon(1e-6));
      CHECK(twice.data()[i] == 2 * id);
    }
  }
  CHECK(batches == 3);
}

// ---- labels and batch sizes that do not fit the data (issue 12, defects 6 and 9) ------------------

// Four plain IDX files in Fashion-MNIST's names: 3 train and 2 test images of 2x2, with these labels.
void write_fashion_files(const fs::path& dir, const std::vector<unsigned char>& train_labels, const std::vector<unsigned char>& test_labels) {
  write_plain(dir / "train-images-idx3-ubyte", idx_bytes(0x803, {3, 2, 2}, random_bytes(12, 1)));
  write_plain(dir / "train-labels-idx1-ubyte", idx_bytes(0x801, {3}, train_labels));
  write_plain(dir / "t10k-images-idx3-ubyte", idx_bytes(0x803, {2, 2, 2}, random_bytes(8, 2)));
  write_plain(dir / "t10k-labels-idx1-ubyte", idx_bytes(0x801, {2}, test_labels));
}

TEST_CASE("data.fashion_mnist.labels_out_of_range_name_the_file_and_sample") {
  temp_dir dir;
  SUBCASE("labels 0-9 load") {
    write_fashion_files(dir.path, {0, 9, 5}, {9, 0});
    const auto sets = data::fashion_mnist(255.0f, dir.path);
    CHECK(sets.train.size() == 3);
    CHECK(sets.train.label(1) == 9);
    CHECK(sets.test.label(0) == 9);
  }
  SUBCASE("a training label of 200") {
    write_fashion_files(dir.path, {0, 200, 5}, {1, 2});
    const auto m = message_of([&] { data::fashion_mnist(255.0f, dir.path); });
    CHECK(contains(m, (dir.path / "train-labels-idx1-ubyte").string()));
    CHECK(contains(m, "sample 1 is 200"));
    CHECK(contains(m, "10 classes"));
  }
  SUBCASE("a test label of 10, one past the last class") {
    write_fashion_files(dir.path, {0, 1, 2}, {3, 10});
    const auto m = message_of([&] { data::fashion_mnist(255.0f, dir.path); });
    CHECK(contains(m, (dir.path / "t10k-labels-idx1-ubyte").string()));
    CHECK(contains(m, "sample 1 is 10"));
  }
}

TEST_CASE("data.pipeline.batch_size_beyond_the_data") {
  SUBCASE("a batch of a trillion over 5 samples buffers 5 and yields one batch") {
    data::pipeline p(numbered(5, {2}), {.batch_size = 1'000'000'000'000, .shuffle = false});
    const auto r = run_epoch(p, 0);
    CHECK(r.sizes == std::vector<std::int64_t>{5});
    CHECK(r.labels == std::vector<std::int32_t>{0, 1, 2, 3, 4});
  }
  SUBCASE("batch buffers whose size overflows are an error naming batch_size") {
    data::stage huge;
    huge.name = "huge";
    huge.in_place = false;
    huge.output_shape = [](const kiln::dims&) { return kiln::dims{std::int64_t(1) << 62}; };
    huge.apply = [](const float*, float*, const kiln::dims&, const data::sample_info&) {};
    const auto m = message_of([&] { data::pipeline p(numbered(4, {2}), {.batch_size = 4}, {huge}); });
    CHECK(contains(m, "batch_size 4"));
    CHECK(contains(m, "too large"));
  }
}
