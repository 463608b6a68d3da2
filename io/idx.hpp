// IDX files (the MNIST / Fashion-MNIST format): a big-endian header, then the raw items. Plain and
// gzip-compressed files are read the same way (see idx_source).
//
// Header: two zero bytes, the element type (0x08 = unsigned byte), the rank, then one big-endian
// u32 per dimension. Images are 0x00000803 [N, rows, cols], labels 0x00000801 [N].
#pragma once
#include <sys/stat.h>
#include <zlib.h>
#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>
#include "../runtime/error.hpp"

namespace kiln::io {

inline constexpr std::uint32_t idx_images_magic = 0x00000803;
inline constexpr std::uint32_t idx_labels_magic = 0x00000801;
inline constexpr std::string_view fashion_mnist_dir = "/usr/share/datasets/fashion-mnist";
inline constexpr std::array<std::string_view, 10> fashion_mnist_classes = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

// Row-major [count, rows, cols] pixels.
struct idx_images {
  std::int64_t count = 0, rows = 0, cols = 0;
  std::vector<std::uint8_t> pixels;
  const std::uint8_t* image(std::int64_t i) const { return pixels.data() + i * rows * cols; }
};

struct idx_labels {
  std::int64_t count = 0;
  std::vector<std::uint8_t> values;
};

struct idx_labeled {
  idx_images images;
  idx_labels labels;
};

struct fashion_mnist_data {
  idx_labeled train, test;
};

namespace detail {

inline std::string hex32(std::uint32_t v) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08x", v);
  return text;
}

// The bytes of an IDX file, plain or gzip-compressed (told apart by gzip's 1f 8b magic). gzip is
// inflated here rather than through gzread, because gzread silently drops whatever follows the last
// gzip member: a gzip file with trailing garbage must be refused as a plain file with trailing bytes
// is. Concatenated gzip members (what `cat a.gz b.gz` makes, and gzip(1) accepts) are one stream.
class idx_source {
 public:
  // `file` stays owned by the caller. `file_bytes` is the file's size, or -1 when it has none (a pipe).
  idx_source(std::FILE* file, std::string path, std::int64_t file_bytes) : file_(file), path_(std::move(path)), file_bytes_(file_bytes) {
    fill();
    gzip_ = in_end_ - in_at_ >= 2 && in_[in_at_] == 0x1f && in_[in_at_ + 1] == 0x8b;
    if (gzip_) {
      if (inflateInit2(&z_, 15 + 16) != Z_OK) throw error("kiln: cannot inflate IDX file " + path_ + ": zlib would not start");
      inflating_ = true;
    }
  }
  idx_source(const idx_source&) = delete;
  idx_source& operator=(const idx_source&) = delete;
  ~idx_source() {
    if (inflating_) inflateEnd(&z_);
  }

  bool gzip() const { return gzip_; }
  std::int64_t file_bytes() const { return file_bytes_; }

  // Reads up to `bytes`; fewer only at the end of the data. Corrupt compressed data and bytes after
  // the last gzip member throw.
  std::size_t read(void* out, std::size_t bytes) { return gzip_ ? inflate_into(static_cast<unsigned char*>(out), bytes) : copy_into(static_cast<unsigned char*>(out), bytes); }

  // Why the last short read was short, for messages ("" at a clean end).
  std::string end_detail() const { return cut_inside_member_ ? " (zlib: unexpected end of file)" : ""; }
  bool cut_inside_member() const { return cut_inside_member_; }

 private:
  // Refills the input buffer when it is empty; false at the end of the file.
  bool fill() {
    if (in_at_ < in_end_) return true;
    in_at_ = in_end_ = 0;
    while (true) {
      const std::size_t got = std::fread(in_.data(), 1, in_.size(), file_);
      if (got > 0) {
        in_end_ = got;
        return true;
      }
      if (std::ferror(file_)) {
        if (errno == EINTR) {
          std::clearerr(file_);
          continue;
        }
        throw error("kiln: reading IDX file " + path_ + " failed: " + std::strerror(errno));
      }
      return false;
    }
  }

  std::size_t copy_into(unsigned char* out, std::size_t bytes) {
    std::size_t done = 0;
    while (done < bytes && fill()) {
      const std::size_t n = std::min(bytes - done, in_end_ - in_at_);
      std::memcpy(out + done, in_.data() + in_at_, n);
      in_at_ += n;
      done += n;
    }
    return done;
  }

  std::size_t inflate_into(unsigned char* out, std::size_t bytes) {
    std::size_t done = 0;
    while (done < bytes) {
      if (!fill()) {
        cut_inside_member_ = !between_members_;
        break;
      }
      if (between_members_) {
        // Only another gzip member may follow a member.
        if (in_[in_at_] != 0x1f || (in_end_ - in_at_ >= 2 && in_[in_at_ + 1] != 0x8b))
          throw error("kiln: IDX file " + path_ + " has trailing garbage after its gzip data (byte 0x" +
                      hex32(in_[in_at_]).substr(8) + " where another gzip member or the end of the file belongs)");
        if (inflateReset(&z_) != Z_OK) throw error("kiln: cannot inflate IDX file " + path_ + ": zlib would not restart");
        between_members_ = false;
      }
      z_.next_in = in_.data() + in_at_;
      z_.avail_in = uInt(in_end_ - in_at_);
      z_.next_out = out + done;
      z_.avail_out = uInt(std::min<std::size_t>(bytes - done, std::size_t(1) << 30));
      const uInt out_before = z_.avail_out;
      const int rc = inflate(&z_, Z_NO_FLUSH);
      in_at_ = in_end_ - z_.avail_in;
      done += out_before - z_.avail_out;
      if (rc == Z_STREAM_END) between_members_ = true;
      else if (rc != Z_OK && rc != Z_BUF_ERROR)
        throw error("kiln: IDX file " + path_ + " is corrupt: " + (z_.msg ? std::string(z_.msg) : "zlib error " + std::to_string(rc)));
    }
    return done;
  }

  std::FILE* file_;
  std::string path_;
  std::int64_t file_bytes_;
  std::array<unsigned char, 1 << 16> in_{};
  std::size_t in_at_ = 0, in_end_ = 0;
  bool gzip_ = false, inflating_ = false, between_members_ = false, cut_inside_member_ = false;
  z_stream z_{};
};

inline std::string_view idx_kind(std::uint32_t magic) {
  if (magic == idx_images_magic) return "images [N, rows, cols]";
  if (magic == idx_labels_magic) return "labels [N]";
  return "unsigned-byte tensor";
}

// deflate's largest expansion (zlib's documented limit, 1032:1): a gzip file of n bytes cannot
// inflate to more than this, so a header declaring more is refused before anything is allocated.
inline constexpr std::uint64_t deflate_max_ratio = 1032;

// Reads an unsigned-byte IDX tensor of the rank `magic` encodes from `in`; returns its dims and
// bytes. The header is read and checked (magic, checked size arithmetic, the size against what the
// file can hold) before the data is allocated, so a forged header costs no memory.
inline std::vector<std::uint8_t> read_idx(idx_source& in, const std::string& path, std::uint32_t magic, std::vector<std::int64_t>& dims) {
  unsigned char head[4];
  const std::size_t got_head = in.read(head, 4);
  if (got_head < 4)
    throw error("kiln: IDX file " + path + " is truncated: " + std::to_string(got_head) + " bytes, shorter than the 4-byte magic" + in.end_detail());
  const std::uint32_t found = std::uint32_t(head[0]) << 24 | std::uint32_t(head[1]) << 16 | std::uint32_t(head[2]) << 8 | head[3];
  if (found != magic) {
    std::string what = "kiln: IDX file " + path + " has bad magic " + hex32(found) + ", expected " + hex32(magic) + " (" +
                       std::string(idx_kind(magic)) + ")";
    if (head[0] == 0 && head[1] == 0 && head[2] != 0x08) what += "; element type 0x" + hex32(head[2]).substr(8) + " is not unsigned byte (0x08)";
    else if (head[0] == 0 && head[1] == 0) what += "; the file holds rank " + std::to_string(head[3]);
    throw error(what);
  }
  const int rank = head[3];
  dims.assign(std::size_t(rank), 0);
  std::uint64_t total = 1;
  bool overflow = false;
  for (int i = 0; i < rank; ++i) {
    unsigned char d[4];
    const std::size_t got = in.read(d, 4);
    if (got < 4)
      throw error("kiln: IDX file " + path + " is truncated inside its header (dimension " + std::to_string(i) + " of " +
                  std::to_string(rank) + ")" + in.end_detail());
    dims[std::size_t(i)] = std::int64_t(std::uint32_t(d[0]) << 24 | std::uint32_t(d[1]) << 16 | std::uint32_t(d[2]) << 8 | d[3]);
    // Three u32 dimensions reach 2^96: a wrapped product would declare a small size.
    overflow = overflow || __builtin_mul_overflow(total, std::uint64_t(dims[std::size_t(i)]), &total);
  }
  std::string declared = "[";
  for (int i = 0; i < rank; ++i) declared += (i ? "," : "") + std::to_string(dims[std::size_t(i)]);
  declared = std::string(idx_kind(magic)) + " " + declared + "]";
  const std::uint64_t header = 4 + 4 * std::uint64_t(rank);
  // The int64 sample arithmetic (image(i)) must hold the size as well.
  if (overflow || total > std::uint64_t(std::numeric_limits<std::int64_t>::max()))
    throw error("kiln: IDX file " + path + " is corrupt: its header declares " + declared + ", more bytes than 2^63");
  auto truncated = [&](std::uint64_t have) {
    return error("kiln: IDX file " + path + " is truncated: the header declares " + declared + " = " + std::to_string(total) +
                 " bytes of data, but only " + std::to_string(have) + " follow" + in.end_detail());
  };
  auto trailing = [&] {
    return error("kiln: IDX file " + path + " has bytes after the " + std::to_string(total) + " bytes of data its header declares");
  };
  if (in.file_bytes() >= 0) {
    const std::uint64_t file_bytes = std::uint64_t(in.file_bytes());
    if (!in.gzip()) {
      // A plain file's size says exactly how much data follows the header.
      const std::uint64_t follow = file_bytes - std::min(file_bytes, header);
      if (total > follow) throw truncated(follow);
      if (total < follow) throw trailing();
    } else if (total / deflate_max_ratio > file_bytes) {
      throw error("kiln: IDX file " + path + " is corrupt: its header declares " + declared + " = " + std::to_string(total) +
                  " bytes, more than its " + std::to_string(file_bytes) + " gzip bytes can inflate to (deflate expands at most " +
                  std::to_string(deflate_max_ratio) + ":1)");
    }
  }
  // Grow while reading, so a header that declares more than the stream holds fails as truncated
  // after allocating at most twice what the stream really holds.
  std::vector<std::uint8_t> data;
  std::size_t have = 0;
  while (have < total) {
    const std::size_t want = std::size_t(std::min<std::uint64_t>(total, std::max<std::uint64_t>(std::uint64_t(have) * 2, std::uint64_t(1) << 20)));
    data.resize(want);
    const std::size_t got = in.read(data.data() + have, want - have);
    have += got;
    if (have < want) throw truncated(have);
  }
  unsigned char extra;
  if (in.read(&extra, 1) != 0) throw trailing();
  // A gzip member cut after the data: its CRC and length were never checked.
  if (in.cut_inside_member())
    throw error("kiln: IDX file " + path + " is truncated: its gzip data ends inside a member, after the " + std::to_string(total) +
                " bytes its header declares" + in.end_detail());
  return data;
}

inline std::vector<std::uint8_t> read_idx(const std::string& path, std::uint32_t magic, std::vector<std::int64_t>& dims) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw error("kiln: cannot read IDX file " + path + ": no such file");
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rbe"), &std::fclose);
  if (!file) throw error("kiln: cannot open IDX file " + path + ": " + std::strerror(errno));
  struct stat st{};
  const std::int64_t file_bytes = (::fstat(::fileno(file.get()), &st) == 0 && S_ISREG(st.st_mode)) ? std::int64_t(st.st_size) : -1;
  idx_source in(file.get(), path, file_bytes);
  return read_idx(in, path, magic, dims);
}

// The same from bytes in memory (`name` is used in messages), for tests and fuzzing.
inline std::vector<std::uint8_t> read_idx_bytes(std::span<const std::byte> bytes, const std::string& name, std::uint32_t magic,
                                                std::vector<std::int64_t>& dims) {
  static const char empty = 0;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(
      bytes.empty() ? ::fmemopen(const_cast<char*>(&empty), 1, "r") : ::fmemopen(const_cast<std::byte*>(bytes.data()), bytes.size(), "rb"),
      &std::fclose);
  if (!file) throw error("kiln: cannot read IDX bytes " + name + ": " + std::strerror(errno));
  if (bytes.empty()) std::fgetc(file.get());  // a 1-byte stream read past: fmemopen refuses size 0
  idx_source in(file.get(), name, std::int64_t(bytes.size()));
  return read_idx(in, name, magic, dims);
}

}  // namespace detail

inline idx_images read_idx_images(const std::string& path) {
  std::vector<std::int64_t> dims;
  idx_images r;
  r.pixels = detail::read_idx(path, idx_images_magic, dims);
  r.count = dims[0];
  r.rows = dims[1];
  r.cols = dims[2];
  return r;
}

inline idx_labels read_idx_labels(const std::string& path) {
  std::vector<std::int64_t> dims;
  idx_labels r;
  r.values = detail::read_idx(path, idx_labels_magic, dims);
  r.count = dims[0];
  return r;
}

inline idx_labeled read_idx_labeled(const std::string& images_path, const std::string& labels_path) {
  idx_labeled r{read_idx_images(images_path), read_idx_labels(labels_path)};
  if (r.images.count != r.labels.count)
    throw error("kiln: IDX image/label count mismatch: " + images_path + " holds " + std::to_string(r.images.count) +
                " images but " + labels_path + " holds " + std::to_string(r.labels.count) + " labels");
  return r;
}

// Reads the four Fashion-MNIST files (gzipped as Debian ships them, or already unpacked) from `dir`.
inline fashion_mnist_data load_fashion_mnist(const std::filesystem::path& dir = std::filesystem::path(fashion_mnist_dir)) {
  auto locate = [&](std::string_view stem) {
    for (const char* suffix : {".gz", ""}) {
      const auto candidate = dir / (std::string(stem) + suffix);
      std::error_code ec;
      if (std::filesystem::exists(candidate, ec)) return candidate.string();
    }
    throw error("kiln: Fashion-MNIST file " + (dir / (std::string(stem) + ".gz")).string() +
                " is missing: install the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist)" +
                " or pass the directory that holds the IDX files");
  };
  // Located in order, so the message names the first missing file.
  const std::string train_images = locate("train-images-idx3-ubyte"), train_labels = locate("train-labels-idx1-ubyte");
  const std::string test_images = locate("t10k-images-idx3-ubyte"), test_labels = locate("t10k-labels-idx1-ubyte");
  fashion_mnist_data r;
  r.train = read_idx_labeled(train_images, train_labels);
  r.test = read_idx_labeled(test_images, test_labels);
  return r;
}

}  // namespace kiln::io
