// Checkpoints: every tensor of a variable store (weights, optimizer slots, counters) plus a step
// number in one file, `<dir>/ckpt-<step>.kiln`. The directory policy (keep-last-K, resume,
// checkpoint_manager) is io/checkpoint_directory.hpp.
//
// Saving writes a temporary file in the same directory, fsyncs it, renames it over the final
// name and fsyncs the directory, so a crash or a full disk leaves either the old set of files or
// the new one, never a torn file under a checkpoint name. Restoring reads and checks the whole
// file (magic, version, CRCs, lengths, and every store variable present with its dtype and shape)
// before it writes a single byte into the store.
//
// Format, little-endian, version 1:
//   header  "KILNCKPT" | u32 version | u32 tensor count | i64 step | u32 reserved | u32 CRC of the 28 bytes before
//   tensor  u32 name length | u8 dtype (1 f32, 2 f64, 3 i32, 4 i64, 5 bool) | u8 rank | u8 flags (1: trainable) | u8 0
//           | i64 dims[rank] | u64 data bytes | name | u32 CRC of this record header | data | u32 CRC of data
// CRCs are CRC-32 (zlib's crc32, the gzip polynomial).
#pragma once
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>
#include "../runtime/checked.hpp"
#include "../runtime/error.hpp"
#include "../runtime/variables.hpp"

namespace kiln::io {

static_assert(std::endian::native == std::endian::little, "kiln checkpoints store tensor bytes as little-endian");

inline constexpr std::string_view checkpoint_magic = "KILNCKPT";
inline constexpr std::uint32_t checkpoint_version = 1;

struct checkpoint_tensor {
  std::string name;
  dtype type = dtype::f32;
  kiln::dims shape{};
  bool trainable = false;
  std::uint64_t offset = 0;  // of the data in the file
  std::uint64_t bytes = 0;
};

struct checkpoint_contents {
  std::int64_t step = 0;
  std::vector<checkpoint_tensor> tensors;
};

struct restore_result {
  std::int64_t step = 0;
  std::vector<std::string> unused;  // tensors of the file that the store does not have
};

namespace detail {

inline std::uint32_t crc32_of(const void* data, std::size_t bytes) {
  return std::uint32_t(crc32_z(0, static_cast<const Bytef*>(data), bytes));
}

inline std::string hex(std::uint32_t v) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08x", v);
  return text;
}

inline std::string errno_text(int code) { return std::strerror(code); }

constexpr std::uint8_t dtype_code(dtype t) {
  switch (t) {
    case dtype::f32: return 1;
    case dtype::f64: return 2;
    case dtype::i32: return 3;
    case dtype::i64: return 4;
    case dtype::boolean: return 5;
    case dtype::u8: return 6;
  }
  return 0;
}
inline std::optional<dtype> dtype_from_code(std::uint8_t c) {
  switch (c) {
    case 1: return dtype::f32;
    case 2: return dtype::f64;
    case 3: return dtype::i32;
    case 4: return dtype::i64;
    case 5: return dtype::boolean;
    case 6: return dtype::u8;
    default: return std::nullopt;
  }
}

inline void put_u32(std::vector<unsigned char>& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<unsigned char>(v >> (8 * i)));
}
inline void put_u64(std::vector<unsigned char>& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<unsigned char>(v >> (8 * i)));
}
inline void put_text(std::vector<unsigned char>& out, std::string_view text) {
  for (char c : text) out.push_back(static_cast<unsigned char>(c));
}
inline std::uint32_t get_u32(const unsigned char* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t(p[i]) << (8 * i);
  return v;
}
inline std::uint64_t get_u64(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= std::uint64_t(p[i]) << (8 * i);
  return v;
}

inline constexpr std::size_t header_bytes = 32;
inline constexpr std::uint32_t max_name_length = 4096;

// Removes the temporary file unless the save got to the rename.
class temp_file {
 public:
  explicit temp_file(std::filesystem::path path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw error("kiln: cannot create checkpoint file " + path_.string() + ": " + errno_text(errno));
  }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;
  ~temp_file() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
  }
  void write(const void* data, std::size_t bytes) {
    auto p = static_cast<const unsigned char*>(data);
    while (bytes > 0) {
      const ssize_t n = ::write(fd_, p, std::min<std::size_t>(bytes, std::size_t(1) << 30));
      if (n < 0) {
        if (errno == EINTR) continue;
        throw error("kiln: writing checkpoint file " + path_.string() + " failed: " + errno_text(errno));
      }
      p += n;
      bytes -= std::size_t(n);
    }
  }
  void sync_and_close() {
    if (::fsync(fd_) != 0) throw error("kiln: fsync of checkpoint file " + path_.string() + " failed: " + errno_text(errno));
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw error("kiln: closing checkpoint file " + path_.string() + " failed: " + errno_text(errno));
  }
  void commit_as(const std::filesystem::path& final_path) {
    if (::rename(path_.c_str(), final_path.c_str()) != 0)
      throw error("kiln: renaming " + path_.string() + " to " + final_path.string() + " failed: " + errno_text(errno));
    committed_ = true;
  }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  bool committed_ = false;
};

// Makes a rename durable: the directory entry itself has to reach the disk.
inline void sync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw error("kiln: cannot open checkpoint directory " + dir.string() + " to fsync it: " + errno_text(errno));
  const int rc = ::fsync(fd);
  const int code = errno;
  ::close(fd);
  if (rc != 0) throw error("kiln: fsync of checkpoint directory " + dir.string() + " failed: " + errno_text(code));
}

// Checks the fixed header (magic, version, CRC) of `f`, which may be just the first bytes of the
// file; returns the tensor count.
inline std::uint32_t check_header(std::span<const unsigned char> f, std::uint64_t file_bytes, const std::string& where) {
  const std::size_t magic_part = std::min(f.size(), checkpoint_magic.size());
  if (magic_part > 0 && std::memcmp(f.data(), checkpoint_magic.data(), magic_part) != 0) throw error(where + " is not a kiln checkpoint (bad magic)");
  if (f.size() < header_bytes)
    throw error(where + " is truncated: " + std::to_string(file_bytes) + " bytes, shorter than the " + std::to_string(header_bytes) + "-byte header");
  const std::uint32_t version = get_u32(f.data() + 8);
  if (version != checkpoint_version)
    throw error(where + " has format version " + std::to_string(version) + "; this build reads version " + std::to_string(checkpoint_version));
  const std::uint32_t header_crc = crc32_of(f.data(), 28);
  if (get_u32(f.data() + 28) != header_crc)
    throw error(where + " is corrupt: header CRC mismatch (stored " + hex(get_u32(f.data() + 28)) + ", computed " + hex(header_crc) + ")");
  return get_u32(f.data() + 12);
}

// Reads the file, checking its header before reading (or allocating for) the rest, so a large file
// that is not a checkpoint costs 32 bytes of reading, not its size.
inline std::vector<unsigned char> read_whole_file(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw error("kiln: cannot open checkpoint " + file.string() + ": " + errno_text(errno));
  struct fd_closer {
    int fd;
    ~fd_closer() { ::close(fd); }
  } closer{fd};
  struct stat st{};
  if (::fstat(fd, &st) != 0) throw error("kiln: cannot stat checkpoint " + file.string() + ": " + errno_text(errno));
  if (!S_ISREG(st.st_mode)) throw error("kiln: checkpoint " + file.string() + " is not a regular file");
  const std::size_t size = std::size_t(st.st_size);
  std::vector<unsigned char> bytes(std::min(size, header_bytes));
  auto read_into = [&](std::size_t from, std::size_t to) {
    for (std::size_t done = from; done < to;) {
      const ssize_t n = ::read(fd, bytes.data() + done, to - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        throw error("kiln: reading checkpoint " + file.string() + " failed" + (n < 0 ? ": " + errno_text(errno) : std::string(": it shrank while being read")));
      done += std::size_t(n);
    }
  };
  read_into(0, bytes.size());
  check_header(bytes, size, "kiln: checkpoint " + file.string());
  bytes.resize(size);
  read_into(header_bytes, size);
  return bytes;
}

// Checks the whole file; on success every tensor's data lies at [offset, offset + bytes).
inline checkpoint_contents parse(std::span<const unsigned char> f, const std::string& file) {
  const std::string where = "kiln: checkpoint " + file;
  const std::uint32_t count = check_header(f, f.size(), where);
  checkpoint_contents c;
  c.step = std::int64_t(get_u64(f.data() + 16));

  std::size_t at = header_bytes;
  auto need = [&](std::size_t bytes, const std::string& what) {
    if (f.size() - at < bytes)
      throw error(where + " is truncated: " + what + " needs " + std::to_string(bytes) + " bytes at offset " + std::to_string(at) +
                  ", but the file ends at " + std::to_string(f.size()));
  };
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::string which = "tensor #" + std::to_string(i) + (i ? " (after '" + c.tensors.back().name + "')" : "");
    const std::size_t record = at;
    need(8, "the record header of " + which);
    const std::uint32_t name_length = get_u32(f.data() + at);
    const std::uint8_t code = f[at + 4], rank = f[at + 5], flags = f[at + 6], reserved = f[at + 7];
    if (name_length == 0 || name_length > max_name_length || rank > max_rank)
      throw error(where + " is corrupt: the record header of " + which + " declares name length " + std::to_string(name_length) + " and rank " +
                  std::to_string(rank));
    need(8 + 8 * std::size_t(rank) + 8 + name_length + 4, "the record header of " + which);
    checkpoint_tensor t;
    t.shape.rank = rank;
    for (int d = 0; d < rank; ++d) t.shape.d[d] = std::int64_t(get_u64(f.data() + at + 8 + 8 * std::size_t(d)));
    at += 8 + 8 * std::size_t(rank);
    t.bytes = get_u64(f.data() + at);
    at += 8;
    t.name.assign(reinterpret_cast<const char*>(f.data() + at), name_length);
    at += name_length;
    const std::uint32_t record_crc = crc32_of(f.data() + record, at - record);
    if (get_u32(f.data() + at) != record_crc)
      throw error(where + " is corrupt: CRC mismatch in the record header of " + which + " (stored " + hex(get_u32(f.data() + at)) +
                  ", computed " + hex(record_crc) + ")");
    at += 4;
    const auto type = dtype_from_code(code);
    if (!type) throw error(where + " is corrupt: tensor '" + t.name + "' has unknown dtype code " + std::to_string(code));
    t.type = *type;
    if ((flags & ~1u) != 0 || reserved != 0)
      throw error(where + " is corrupt: tensor '" + t.name + "' has unknown flags " + std::to_string(flags) + " / " + std::to_string(reserved));
    t.trainable = flags & 1;
    for (int d = 0; d < rank; ++d)
      if (t.shape.d[d] < 0) throw error(where + " is corrupt: tensor '" + t.name + "' has a negative dimension");
    // Forged dims pass the CRCs; their product must not overflow (checked, not wrapped or UB).
    std::int64_t expected_bytes = 0;
    if (t.shape.checked_elements() < 0 || !checked_mul(t.shape.checked_elements(), std::int64_t(size_of(t.type)), expected_bytes))
      throw error(where + " is corrupt: tensor '" + t.name + "' has dims " + to_string(t.shape) + " whose size int64 cannot count");
    if (t.bytes != std::uint64_t(expected_bytes))
      throw error(where + " is corrupt: tensor '" + t.name + "' is " + std::string(name_of(t.type)) + " " + to_string(t.shape) + " but declares " +
                  std::to_string(t.bytes) + " data bytes");
    for (const auto& other : c.tensors)
      if (other.name == t.name) throw error(where + " is corrupt: tensor '" + t.name + "' appears twice");
    if (t.bytes > f.size())  // checked before `need` adds to it; the message gives the real size
      throw error(where + " is truncated: the data of tensor '" + t.name + "' (" + std::string(name_of(t.type)) + " " + to_string(t.shape) + ") needs " +
                  std::to_string(t.bytes) + " bytes at offset " + std::to_string(at) + ", but the file ends at " + std::to_string(f.size()));
    need(std::size_t(t.bytes) + 4, "the data of tensor '" + t.name + "' (" + std::string(name_of(t.type)) + " " + to_string(t.shape) + ")");
    t.offset = at;
    const std::uint32_t data_crc = crc32_of(f.data() + at, std::size_t(t.bytes));
    at += std::size_t(t.bytes);
    if (get_u32(f.data() + at) != data_crc)
      throw error(where + " is corrupt: the data of tensor '" + t.name + "' (" + std::string(name_of(t.type)) + " " + to_string(t.shape) +
                  ") fails its CRC check (stored " + hex(get_u32(f.data() + at)) + ", computed " + hex(data_crc) + ")");
    at += 4;
    c.tensors.push_back(std::move(t));
  }
  if (at != f.size())
    throw error(where + " is corrupt: " + std::to_string(f.size() - at) + " unexpected bytes after its " + std::to_string(count) + " tensors");
  return c;
}

}  // namespace detail

// Writes every variable of `store` to exactly `file`, atomically (see the top of this file).
inline void write_checkpoint(const variables& store, const std::filesystem::path& file, std::int64_t step) {
  const std::filesystem::path dir = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  std::vector<unsigned char> head;
  detail::put_text(head, checkpoint_magic);
  detail::put_u32(head, checkpoint_version);
  detail::put_u32(head, std::uint32_t(store.size()));
  detail::put_u64(head, std::uint64_t(step));
  detail::put_u32(head, 0);
  detail::put_u32(head, detail::crc32_of(head.data(), head.size()));

  detail::temp_file out(dir / ("." + file.filename().string() + ".tmp-" + std::to_string(::getpid())));
  out.write(head.data(), head.size());
  std::vector<unsigned char> record;
  for (std::size_t i = 0; i < store.size(); ++i) {
    const variables::entry& e = store[i];
    const std::size_t bytes = std::size_t(e.shape.elements()) * size_of(e.type);
    record.clear();
    detail::put_u32(record, std::uint32_t(e.name.size()));
    record.push_back(detail::dtype_code(e.type));
    record.push_back(std::uint8_t(e.shape.rank));
    record.push_back(e.trainable ? 1 : 0);
    record.push_back(0);
    for (int d = 0; d < e.shape.rank; ++d) detail::put_u64(record, std::uint64_t(e.shape.d[d]));
    detail::put_u64(record, bytes);
    detail::put_text(record, e.name);
    detail::put_u32(record, detail::crc32_of(record.data(), record.size()));
    out.write(record.data(), record.size());
    out.write(e.data.data(), bytes);
    record.clear();
    detail::put_u32(record, detail::crc32_of(e.data.data(), bytes));
    out.write(record.data(), record.size());
  }
  out.sync_and_close();
  out.commit_as(file);
  detail::sync_directory(dir);
}

// Reads and checks a checkpoint (CRCs included) without a store.
inline checkpoint_contents read_checkpoint_contents(const std::filesystem::path& file) {
  return detail::parse(detail::read_whole_file(file), file.string());
}

// The same from the bytes of a checkpoint in memory; `name` is used in messages.
inline checkpoint_contents read_checkpoint_contents(std::span<const std::byte> bytes, const std::string& name) {
  return detail::parse({reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()}, name);
}

// Loads every variable of `store` from the checkpoint `bytes` (`name` is used in messages). All
// of them must be in it with the same dtype, shape and trainable flag; tensors the store lacks are
// listed in `unused`. On any error the store keeps its values.
inline restore_result restore_checkpoint(variables& store, std::span<const std::byte> bytes_in, const std::string& name) {
  const std::span<const unsigned char> bytes(reinterpret_cast<const unsigned char*>(bytes_in.data()), bytes_in.size());
  const std::string file = name;
  const auto contents = detail::parse(bytes, file);
  std::vector<const checkpoint_tensor*> source(store.size(), nullptr);
  // One line per problem, at most max_lines of them, and the checkpoint's names listed once: a
  // checkpoint of another model would otherwise repeat its whole name list per variable (15 KB).
  constexpr std::size_t max_lines = 12, max_names = 24;
  std::string problems;
  std::size_t n_problems = 0, n_missing = 0;
  auto problem = [&](const std::string& line) {
    if (++n_problems <= max_lines) problems += "\n  " + line;
  };
  for (std::size_t i = 0; i < store.size(); ++i) {
    const variables::entry& e = store[i];
    const std::string have = std::string(name_of(e.type)) + " " + to_string(e.shape);
    for (const auto& t : contents.tensors)
      if (t.name == e.name) source[i] = &t;
    const checkpoint_tensor* t = source[i];
    if (!t) {
      ++n_missing;
      problem("variable '" + e.name + "' (" + have + ") is missing from the checkpoint");
    } else if (t->type != e.type || !(t->shape == e.shape)) {
      problem("variable '" + e.name + "' is " + have + " in the store but " + std::string(name_of(t->type)) + " " + to_string(t->shape) +
              " in the checkpoint");
    } else if (t->trainable != e.trainable) {
      // A trainable weight restored from a non-trainable statistic (or the reverse) is another model.
      auto kind = [](bool trainable) { return trainable ? "trainable" : "not trainable"; };
      problem("variable '" + e.name + "' is " + kind(e.trainable) + " in the store but " + kind(t->trainable) + " in the checkpoint");
    }
  }
  if (n_problems > max_lines) problems += "\n  ... and " + std::to_string(n_problems - max_lines) + " more problems";
  if (n_missing > 0) {
    std::string names;
    std::size_t listed = 0;
    for (const auto& u : contents.tensors)
      if (listed++ < max_names) names += (names.empty() ? "" : ", ") + u.name;
    if (contents.tensors.size() > max_names) names += ", ... (" + std::to_string(contents.tensors.size() - max_names) + " more)";
    problems += "\n  " + std::to_string(n_missing) + " of the store's " + std::to_string(store.size()) + " variables are missing; the checkpoint holds " +
                std::to_string(contents.tensors.size()) + " tensors: " + (names.empty() ? "(nothing)" : names);
    if (n_missing == store.size()) problems += "\n  (none of the store's variables is in it: was it written by another model?)";
  }
  if (!problems.empty()) throw error("kiln: cannot restore checkpoint " + file + ":" + problems);
  restore_result r;
  r.step = contents.step;
  for (std::size_t i = 0; i < store.size(); ++i) {
    auto* e = store.find(store[i].name);
    std::memcpy(e->data.data(), bytes.data() + source[i]->offset, std::size_t(source[i]->bytes));
  }
  for (const auto& t : contents.tensors) {
    bool used = false;
    for (std::size_t i = 0; i < store.size() && !used; ++i) used = source[i] == &t;
    if (!used) r.unused.push_back(t.name);
  }
  return r;
}

// Loads every variable of `store` from `file`; see above.
inline restore_result restore_checkpoint(variables& store, const std::filesystem::path& file) {
  const auto bytes = detail::read_whole_file(file);
  return restore_checkpoint(store, std::as_bytes(std::span(bytes)), file.string());
}

}  // namespace kiln::io
