// TFRecord files: the record framing TensorFlow and TensorBoard read, and a buffered append-only
// writer that reports every failed write as kiln::error with the file's path.
//
// One record (all integers little-endian; tensorflow/core/lib/io/record_writer.cc):
//   uint64 length | uint32 masked_crc32c(length bytes) | data[length] | uint32 masked_crc32c(data)
#pragma once
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.hpp"
#include "../runtime/error.hpp"

namespace kiln::io {

inline void append_le32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(char((v >> (8 * i)) & 0xFFu));
}
inline void append_le64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(char((v >> (8 * i)) & 0xFFu));
}

inline constexpr std::size_t tfrecord_overhead = 8 + 4 + 4;

// Appends one framed record holding `data` to `out`.
inline void append_tfrecord(std::string& out, std::string_view data) {
  out.reserve(out.size() + data.size() + tfrecord_overhead);
  const std::size_t header_at = out.size();
  append_le64(out, data.size());
  append_le32(out, masked_crc32c(std::string_view(out).substr(header_at, 8)));
  out.append(data);
  append_le32(out, masked_crc32c(data));
}

// Owns one file descriptor. Records collect in memory until flush(); flush() hands them to the
// kernel, close() also fsyncs. Errors throw and keep the unwritten bytes buffered, so nothing is
// dropped silently and a later flush() retries. The destructor cannot throw: it closes best-effort
// and prints a failure on stderr; call close() to see the error as an exception.
class tfrecord_writer {
 public:
  tfrecord_writer() = default;

  // Creates or truncates `path`.
  explicit tfrecord_writer(std::filesystem::path path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("cannot open", errno);
  }

  // Creates `path` only if it does not exist yet: nullopt when it does, so a caller can pick
  // another name instead of overwriting another writer's file.
  static std::optional<tfrecord_writer> create_new(std::filesystem::path path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
      if (errno == EEXIST) return std::nullopt;
      throw error("tfrecord: cannot create '" + path.string() + "': " + std::strerror(errno));
    }
    tfrecord_writer w;
    w.fd_ = fd;
    w.path_ = std::move(path);
    return w;
  }

  tfrecord_writer(const tfrecord_writer&) = delete;
  tfrecord_writer& operator=(const tfrecord_writer&) = delete;
  tfrecord_writer(tfrecord_writer&& o) noexcept
      : fd_(std::exchange(o.fd_, -1)), path_(std::move(o.path_)), pending_(std::move(o.pending_)),
        written_(o.written_) {}
  tfrecord_writer& operator=(tfrecord_writer&& o) noexcept {
    if (this != &o) {
      close_noexcept();
      fd_ = std::exchange(o.fd_, -1);
      path_ = std::move(o.path_);
      pending_ = std::move(o.pending_);
      written_ = o.written_;
    }
    return *this;
  }
  ~tfrecord_writer() { close_noexcept(); }

  void write(std::string_view record) {
    if (fd_ < 0) throw error("tfrecord: write to closed file '" + path_.string() + "'");
    append_tfrecord(pending_, record);
  }

  void flush() {
    if (fd_ < 0) return;
    // A deleted file (e.g. its log dir was removed) still accepts writes on Linux, which would
    // lose every later record without a sound.
    struct stat st {};
    if (::fstat(fd_, &st) == 0 && st.st_nlink == 0)
      throw error("tfrecord: '" + path_.string() + "' was deleted while open (log directory removed?); " +
                  std::to_string(pending_.size()) + " bytes not written");
    std::size_t done = 0;
    while (done < pending_.size()) {
      ssize_t n = ::write(fd_, pending_.data() + done, pending_.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        pending_.erase(0, done);
        written_ += done;
        fail("writing failed", err);
      }
      done += std::size_t(n);
    }
    written_ += done;
    pending_.clear();
  }

  void close() {
    if (fd_ < 0) return;
    flush();
    if (::fsync(fd_) != 0 && errno != EINVAL && errno != EROFS) fail("fsync failed", errno);  // EINVAL: e.g. a pipe
    int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) fail("close failed", errno);
  }

  // Closes without writing the buffered records (after a failure that was already reported).
  void discard() noexcept {
    pending_.clear();
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }

  bool is_open() const { return fd_ >= 0; }
  const std::filesystem::path& path() const { return path_; }
  std::size_t pending_bytes() const { return pending_.size(); }
  std::uint64_t bytes_written() const { return written_; }

 private:
  [[noreturn]] void fail(const char* what, int err) const {
    std::string msg = std::string("tfrecord: ") + what + " for '" + path_.string() + "': " + std::strerror(err);
    if (!pending_.empty()) msg += " (" + std::to_string(pending_.size()) + " bytes still buffered)";
    throw error(msg);
  }

  void close_noexcept() noexcept {
    if (fd_ < 0) return;
    try {
      close();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "kiln: %s\n", e.what());
    }
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }

  int fd_ = -1;
  std::filesystem::path path_;
  std::string pending_;
  std::uint64_t written_ = 0;
};

}  // namespace kiln::io
