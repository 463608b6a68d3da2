// TensorBoard summaries written from C++, without TensorFlow or protobuf: the Event protocol
// buffers are encoded by hand and framed as TFRecords (io/tfrecord.hpp).
//
//   kiln::summary_writer tb("logs/run1");          // logs/run1/events.out.tfevents.<time>.<host>
//   tb.scalar("loss", loss, step);
//   tb.histogram("dense/w", exe.variable<float>("dense/w").flat(), step);   // any float/double range
//   tb.image("conv1/filters", kiln::filter_grid(kernel, 2, 2, 1, 32, 8), step);
//   tb.text("config", "batch 64, lr 1e-3", step);
//
// Field numbers: tensorflow/core/util/event.proto (Event), tensorflow/core/framework/summary.proto
// (Summary, Value, Image, HistogramProto, SummaryMetadata), tensor.proto, tensor_shape.proto, types.proto.
#pragma once
#include <algorithm>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <ranges>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include <unistd.h>

#include "png.hpp"
#include "tfrecord.hpp"
#include "../runtime/error.hpp"

namespace kiln {

// Any contiguous range of float or double: std::vector, std::span, std::array, tensor_view::flat().
template <class R>
concept floating_range = std::ranges::contiguous_range<R> && std::ranges::sized_range<R> &&
                         std::is_floating_point_v<std::remove_cv_t<std::ranges::range_value_t<R>>>;

namespace io::proto {

enum wire : std::uint32_t { varint_wire = 0, fixed64_wire = 1, length_wire = 2, fixed32_wire = 5 };

// Append-only protobuf encoder: just the wire types the summaries use.
struct encoder {
  std::string bytes;

  void varint(std::uint64_t v) {
    while (v >= 0x80) {
      bytes.push_back(char((v & 0x7F) | 0x80));
      v >>= 7;
    }
    bytes.push_back(char(v));
  }
  void key(std::uint32_t field, wire w) { varint((std::uint64_t(field) << 3) | w); }
  // int32/int64/enum: negative values are sign-extended to 10 bytes, as protobuf does.
  void int_field(std::uint32_t field, std::int64_t v) {
    key(field, varint_wire);
    varint(std::uint64_t(v));
  }
  void fixed64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) bytes.push_back(char((v >> (8 * i)) & 0xFF));
  }
  void fixed32(std::uint32_t v) {
    for (int i = 0; i < 4; ++i) bytes.push_back(char((v >> (8 * i)) & 0xFF));
  }
  void double_value(double d) {
    std::uint64_t v;
    std::memcpy(&v, &d, 8);
    fixed64(v);
  }
  void double_field(std::uint32_t field, double d) {
    key(field, fixed64_wire);
    double_value(d);
  }
  void float_field(std::uint32_t field, float f) {
    std::uint32_t v;
    std::memcpy(&v, &f, 4);
    key(field, fixed32_wire);
    fixed32(v);
  }
  void bytes_field(std::uint32_t field, std::string_view b) {
    key(field, length_wire);
    varint(b.size());
    bytes.append(b);
  }
  void message_field(std::uint32_t field, const encoder& m) { bytes_field(field, m.bytes); }
  void packed_doubles(std::uint32_t field, std::span<const double> values) {
    key(field, length_wire);
    varint(values.size() * 8);
    for (double d : values) double_value(d);
  }
};

}  // namespace io::proto

// HistogramProto contents, bucketed like TensorFlow's C++ histogram (tf.compat.v1.summary.histogram):
// bucket limits ..., -1e-12*1.1, -1e-12, 0, 1e-12, 1e-12*1.1, ... up to 1e20, then DBL_MAX, mirrored
// for negatives (1551 limits, 10% wide, so the resolution is relative to each value's magnitude).
// Bucket i counts the values in [bucket_limit[i-1], bucket_limit[i]) (bucket 0 from -DBL_MAX).
// Runs of empty buckets are merged into one, as TensorFlow's EncodeToProto does, so only a few
// dozen (limit, count) pairs are written for typical weights.
struct histogram_data {
  double min = 0, max = 0, num = 0, sum = 0, sum_squares = 0;
  std::vector<double> bucket_limit;
  std::vector<double> bucket;
};

inline const std::vector<double>& default_histogram_bucket_limits() {
  static const std::vector<double> limits = [] {
    std::vector<double> positive;
    for (double v = 1.0e-12; v < 1.0e20; v *= 1.1) positive.push_back(v);
    positive.push_back(DBL_MAX);
    std::vector<double> all;
    all.reserve(2 * positive.size() + 1);
    for (auto it = positive.rbegin(); it != positive.rend(); ++it) all.push_back(-*it);
    all.push_back(0.0);
    all.insert(all.end(), positive.begin(), positive.end());
    return all;
  }();
  return limits;
}

// Throws kiln::error naming `tag` for an empty input or a NaN/inf (which has no bucket; TensorFlow
// refuses it as well, and a diverged weight is worth a loud message).
template <floating_range R>
histogram_data make_histogram(R&& range, std::string_view tag = "histogram") {
  const std::span values(std::ranges::data(range), std::ranges::size(range));
  if (values.empty()) throw error("summary histogram '" + std::string(tag) + "': no values");
  const auto& limits = default_histogram_bucket_limits();
  std::vector<double> counts(limits.size(), 0.0);
  histogram_data h;
  h.min = DBL_MAX;
  h.max = -DBL_MAX;
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double v = double(values[i]);
    if (!std::isfinite(v))
      throw error("summary histogram '" + std::string(tag) + "': value " + std::to_string(i) + " of " +
                  std::to_string(values.size()) + " is " + (std::isnan(v) ? "NaN" : "infinite"));
    std::size_t b = std::size_t(std::upper_bound(limits.begin(), limits.end(), v) - limits.begin());
    counts[std::min(b, limits.size() - 1)] += 1.0;  // only v == DBL_MAX lands past the last limit
    h.min = std::min(h.min, v);
    h.max = std::max(h.max, v);
    h.sum += v;
    h.sum_squares += v * v;
  }
  h.num = double(values.size());
  for (std::size_t i = 0; i < counts.size();) {
    double end = limits[i], count = counts[i];
    ++i;
    if (count <= 0.0)
      while (i < counts.size() && counts[i] <= 0.0) end = limits[i++];
    h.bucket_limit.push_back(end);
    h.bucket.push_back(count);
  }
  return h;
}

// An 8-bit image, `channels` bytes per pixel interleaved, rows top to bottom.
struct image_u8 {
  int height = 0, width = 0, channels = 1;
  std::vector<std::uint8_t> pixels;
};

// Tiles a convolution kernel stored [kh, kw, in, out] row-major (HWIO, the layout of a conv2d
// kernel variable) into one grayscale image: one kh x kw tile per (out, in) pair, in the order
// out-major (tile t = o * in + i), laid left to right, top to bottom on a grid of
// ceil(sqrt(in * out)) columns, with `border` black pixels between tiles; each weight becomes a
// zoom x zoom block. Gray levels map the kernel's global [min, max] to [0, 255] (rounded), so
// tiles are comparable with each other; a constant kernel is mid-gray (128).
template <floating_range R>
image_u8 filter_grid(R&& kernel_range, int kh, int kw, int in_channels, int out_channels, int zoom = 1, int border = 1) {
  const std::span kernel(std::ranges::data(kernel_range), std::ranges::size(kernel_range));
  auto shape = [&] {
    return "[" + std::to_string(kh) + "," + std::to_string(kw) + "," + std::to_string(in_channels) + "," +
           std::to_string(out_channels) + "]";
  };
  if (kh <= 0 || kw <= 0 || in_channels <= 0 || out_channels <= 0)
    throw error("filter_grid: kernel shape " + shape() + " must be positive");
  if (zoom < 1 || border < 0) throw error("filter_grid: zoom must be >= 1 and border >= 0");
  const std::size_t n = std::size_t(kh) * std::size_t(kw) * std::size_t(in_channels) * std::size_t(out_channels);
  if (kernel.size() != n)
    throw error("filter_grid: kernel has " + std::to_string(kernel.size()) + " values, shape " + shape() + " needs " +
                std::to_string(n));
  double lo = DBL_MAX, hi = -DBL_MAX;
  for (double v : kernel) {
    if (!std::isfinite(double(v))) throw error("filter_grid: kernel " + shape() + " holds a NaN or infinity");
    lo = std::min(lo, double(v));
    hi = std::max(hi, double(v));
  }
  const int tiles = in_channels * out_channels;
  const int cols = int(std::ceil(std::sqrt(double(tiles))));
  const int rows = (tiles + cols - 1) / cols;
  const int tile_h = kh * zoom, tile_w = kw * zoom;
  image_u8 img;
  img.channels = 1;
  img.height = rows * tile_h + (rows - 1) * border;
  img.width = cols * tile_w + (cols - 1) * border;
  img.pixels.assign(std::size_t(img.height) * std::size_t(img.width), 0);
  for (int t = 0; t < tiles; ++t) {
    const int o = t / in_channels, i = t % in_channels;
    const int top = (t / cols) * (tile_h + border), left = (t % cols) * (tile_w + border);
    for (int y = 0; y < kh; ++y)
      for (int x = 0; x < kw; ++x) {
        const double v = double(kernel[((std::size_t(y) * kw + x) * in_channels + i) * out_channels + o]);
        const auto level = std::uint8_t(hi > lo ? std::lround(255.0 * (v - lo) / (hi - lo)) : 128);
        for (int zy = 0; zy < zoom; ++zy)
          for (int zx = 0; zx < zoom; ++zx)
            img.pixels[std::size_t(top + y * zoom + zy) * img.width + std::size_t(left + x * zoom + zx)] = level;
      }
  }
  return img;
}

struct summary_writer_options {
  // Buffered summaries reach the file at the first write after this much time since the last
  // flush (checked on write: no background thread), and on flush(), close() and destruction.
  std::chrono::milliseconds flush_interval{2000};
  // ... or as soon as this many bytes are buffered, so large images do not pile up in memory.
  std::size_t max_pending_bytes = std::size_t(1) << 20;
  // Appended to the file name, like TensorFlow's filename_suffix (e.g. ".v2").
  std::string filename_suffix{};
};

// An events file for one run (tf.summary.create_file_writer): creates `logdir` and
// `logdir/events.out.tfevents.<10-digit unix seconds>.<hostname>[suffix]` (".1", ".2", ... is
// appended if that file already exists, e.g. two writers started in the same second; TensorBoard
// reads every file whose name contains "tfevents"). The first record, Event{wall_time,
// file_version "brain.Event:2"}, is written at once. Thread-safe. Every I/O failure throws
// kiln::error naming the file; summaries that could not be written stay buffered, never dropped
// silently. The destructor flushes but cannot throw (it prints a failure on stderr): call close()
// to get errors as exceptions.
class summary_writer {
 public:
  explicit summary_writer(const std::filesystem::path& logdir, summary_writer_options options = {})
      : logdir_(logdir), options_(std::move(options)) {
    std::error_code ec;
    std::filesystem::create_directories(logdir_, ec);
    if (ec || !std::filesystem::is_directory(logdir_))
      throw error("summary_writer: cannot create log directory '" + logdir_.string() + "': " +
                  (ec ? ec.message() : std::string("exists and is not a directory")));
    const double now = wall_time();
    char stamp[32];
    std::snprintf(stamp, sizeof stamp, "%010lld", static_cast<long long>(now));
    const std::string base = "events.out.tfevents." + std::string(stamp) + "." + hostname() + options_.filename_suffix;
    for (int attempt = 0; attempt < 1000 && !file_; ++attempt)
      file_ = io::tfrecord_writer::create_new(logdir_ / (attempt ? base + "." + std::to_string(attempt) : base));
    if (!file_) throw error("summary_writer: no free events file name like '" + (logdir_ / base).string() + "'");

    io::proto::encoder event;
    event.double_field(1, now);  // Event.wall_time
    event.bytes_field(3, "brain.Event:2");  // Event.file_version
    file_->write(event.bytes);
    file_->flush();
    last_flush_ = std::chrono::steady_clock::now();
  }

  summary_writer(const summary_writer&) = delete;
  summary_writer& operator=(const summary_writer&) = delete;
  ~summary_writer() = default;  // tfrecord_writer's destructor flushes, fsyncs and closes

  void scalar(std::string_view tag, double value, std::int64_t step) {
    io::proto::encoder v;
    v.bytes_field(1, tag);  // Value.tag
    v.float_field(2, float(value));  // Value.simple_value
    write_value(v, step);
  }

  template <floating_range R>
  void histogram(std::string_view tag, R&& values, std::int64_t step) {
    histogram(tag, make_histogram(values, tag), step);
  }
  void histogram(std::string_view tag, const histogram_data& h, std::int64_t step) {
    if (h.bucket.size() != h.bucket_limit.size() || h.bucket.empty())
      throw error("summary histogram '" + std::string(tag) + "': needs as many buckets as bucket limits, at least one");
    io::proto::encoder histo;
    histo.double_field(1, h.min);
    histo.double_field(2, h.max);
    histo.double_field(3, h.num);
    histo.double_field(4, h.sum);
    histo.double_field(5, h.sum_squares);
    histo.packed_doubles(6, h.bucket_limit);
    histo.packed_doubles(7, h.bucket);
    io::proto::encoder v;
    v.bytes_field(1, tag);
    v.message_field(5, histo);  // Value.histo
    write_value(v, step);
  }

  // `pixels`: height x width x channels bytes, rows top to bottom; channels 1 gray, 2 gray+alpha,
  // 3 RGB, 4 RGBA. Stored as PNG.
  void image(std::string_view tag, int height, int width, int channels, const std::uint8_t* pixels, std::int64_t step) {
    std::string png;
    try {
      png = io::encode_png(height, width, channels, pixels);
    } catch (const error& e) {
      throw error("summary image '" + std::string(tag) + "': " + e.what());
    }
    io::proto::encoder img;
    img.int_field(1, height);
    img.int_field(2, width);
    img.int_field(3, channels);  // Image.colorspace: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA = channel count
    img.bytes_field(4, png);
    io::proto::encoder v;
    v.bytes_field(1, tag);
    v.message_field(4, img);  // Value.image
    write_value(v, step);
  }
  void image(std::string_view tag, const image_u8& img, std::int64_t step) {
    if (img.pixels.size() != std::size_t(std::max(img.height, 0)) * std::size_t(std::max(img.width, 0)) *
                                 std::size_t(std::max(img.channels, 0)))
      throw error("summary image '" + std::string(tag) + "': " + std::to_string(img.pixels.size()) + " bytes for " +
                  std::to_string(img.height) + "x" + std::to_string(img.width) + "x" + std::to_string(img.channels));
    image(tag, img.height, img.width, img.channels, img.pixels.data(), step);
  }

  // Shown by TensorBoard's text dashboard (rendered as Markdown): a scalar DT_STRING tensor
  // tagged with the "text" plugin, as tf.summary.text writes it.
  void text(std::string_view tag, std::string_view text, std::int64_t step) {
    io::proto::encoder shape;  // TensorShapeProto with no dims: a scalar
    io::proto::encoder tensor;
    tensor.int_field(1, 7);  // TensorProto.dtype = DT_STRING
    tensor.message_field(2, shape);  // TensorProto.tensor_shape
    tensor.bytes_field(8, text);  // TensorProto.string_val
    io::proto::encoder plugin;
    plugin.bytes_field(1, "text");  // PluginData.plugin_name; content: TextPluginData{version 0} = empty
    io::proto::encoder metadata;
    metadata.message_field(1, plugin);  // SummaryMetadata.plugin_data
    metadata.int_field(4, 2);  // SummaryMetadata.data_class = DATA_CLASS_TENSOR
    io::proto::encoder v;
    v.bytes_field(1, tag);
    v.message_field(8, tensor);  // Value.tensor
    v.message_field(9, metadata);  // Value.metadata
    write_value(v, step);
  }

  void flush() {
    std::lock_guard lock(mutex_);
    flush_locked();
  }
  // Flushes, fsyncs and closes; later writes throw. Throws kiln::error if anything failed.
  void close() {
    std::lock_guard lock(mutex_);
    file_->close();
  }
  // Closes without writing what is buffered; later writes throw. For a writer whose failure was
  // already reported: its destructor would otherwise retry the flush and report it again.
  void abandon() noexcept {
    std::lock_guard lock(mutex_);
    file_->discard();
  }

  const std::filesystem::path& path() const { return file_->path(); }
  const std::filesystem::path& logdir() const { return logdir_; }
  std::size_t pending_bytes() const {
    std::lock_guard lock(mutex_);
    return file_->pending_bytes();
  }

 private:
  static double wall_time() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  }
  static std::string hostname() {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0 || !name[0]) return "localhost";
    return name;
  }

  void write_value(const io::proto::encoder& value, std::int64_t step) {
    if (value.bytes.size() > (std::size_t(1) << 31))
      throw error("summary: a value of " + std::to_string(value.bytes.size()) + " bytes is too large for one event");
    io::proto::encoder summary;
    summary.message_field(1, value);  // Summary.value
    io::proto::encoder event;
    event.double_field(1, wall_time());  // Event.wall_time
    event.int_field(2, step);  // Event.step
    event.message_field(5, summary);  // Event.summary
    std::lock_guard lock(mutex_);
    if (!file_->is_open()) throw error("summary_writer: '" + file_->path().string() + "' is closed");
    file_->write(event.bytes);
    if (flush_failed_ || file_->pending_bytes() >= options_.max_pending_bytes ||
        std::chrono::steady_clock::now() - last_flush_ >= options_.flush_interval)
      flush_locked();
  }
  // After a failed flush every write retries at once, so a broken file keeps reporting instead
  // of collecting summaries quietly until the next interval.
  void flush_locked() {
    flush_failed_ = true;
    file_->flush();
    flush_failed_ = false;
    last_flush_ = std::chrono::steady_clock::now();
  }

  std::filesystem::path logdir_;
  summary_writer_options options_;
  std::optional<io::tfrecord_writer> file_;
  std::chrono::steady_clock::time_point last_flush_{};
  bool flush_failed_ = false;
  mutable std::mutex mutex_;
};

}  // namespace kiln
