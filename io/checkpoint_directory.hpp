// The checkpoint directory policy: which files of `<dir>/ckpt-<step>.kiln` exist, which one a
// resume uses, which ones keep-last-K deletes, and what a new run does with a directory that
// already holds checkpoints. The file format itself is io/checkpoint.hpp.
//
// Promises (docs/reliability.md lists the tests):
// - A save never deletes the file it just wrote, nor a checkpoint with a higher step than its own
//   (that one belongs to a newer or another run); keep-last-K prunes only older steps.
// - checkpoint_manager::prepare() (called by callbacks::checkpoint before the first epoch) checks
//   that the directory can be created and written, and refuses a directory holding checkpoints
//   newer than the step training starts from (another run's, or a run that was not resumed),
//   unless told to overwrite them.
// - A resume checks every candidate file (CRCs, and the step in its header against the one in its
//   name) newest first: an unreadable or misnamed file is reported on stderr, moved aside as
//   `<name>.corrupt` so it steers no later resume, and the newest valid checkpoint is used.
// - Temporary files `.ckpt-<step>.kiln.tmp-<pid>` of writers that died (kill -9 mid-save) are
//   removed when a manager opens the directory; those of a live process are left alone.
#pragma once
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>
#include "../runtime/error.hpp"
#include "../runtime/variables.hpp"
#include "checkpoint.hpp"

namespace kiln::io {

namespace detail {

inline std::optional<std::int64_t> step_of_name(std::string_view name) {
  constexpr std::string_view prefix = "ckpt-", suffix = ".kiln";
  if (name.size() <= prefix.size() + suffix.size() || !name.starts_with(prefix) || !name.ends_with(suffix)) return std::nullopt;
  const std::string_view digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  std::int64_t step = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), step);
  if (ec != std::errc() || end != digits.data() + digits.size() || step < 0 || digits[0] == '+') return std::nullopt;
  return step;
}

// The writer's pid of a temporary file of write_checkpoint (".ckpt-<...>.tmp-<pid>").
inline std::optional<pid_t> temp_file_owner(std::string_view name) {
  if (!name.starts_with(".ckpt-")) return std::nullopt;
  const auto at = name.rfind(".tmp-");
  if (at == std::string_view::npos) return std::nullopt;
  const std::string_view digits = name.substr(at + 5);
  long long pid = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), pid);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || pid <= 0) return std::nullopt;
  return pid_t(pid);
}

inline bool process_is_gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

}  // namespace detail

inline std::filesystem::path checkpoint_path(const std::filesystem::path& dir, std::int64_t step) {
  return dir / ("ckpt-" + std::to_string(step) + ".kiln");
}

// The checkpoints in `dir` as (step, path), oldest step first; none when the directory is missing.
inline std::vector<std::pair<std::int64_t, std::filesystem::path>> list_checkpoints(const std::filesystem::path& dir) {
  std::vector<std::pair<std::int64_t, std::filesystem::path>> found;
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec), end;
  if (ec) return found;
  for (; it != end; it.increment(ec)) {
    if (ec) break;
    if (auto step = detail::step_of_name(it->path().filename().string()); step && it->is_regular_file(ec)) found.emplace_back(*step, it->path());
  }
  std::sort(found.begin(), found.end());
  return found;
}

// The newest by the name's step; not checked (checkpoint_manager::restore_latest checks).
inline std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& dir) {
  auto all = list_checkpoints(dir);
  if (all.empty()) return std::nullopt;
  return all.back().second;
}

// Removes `.ckpt-*.tmp-<pid>` files whose writer no longer runs (killed mid-save); returns them.
// A pid is only meaningful on this machine: a directory shared with other hosts over a network
// file system can hold a live writer's file under a pid that is free here.
inline std::vector<std::filesystem::path> remove_stale_temp_files(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> removed;
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec), end;
  if (ec) return removed;
  for (; it != end; it.increment(ec)) {
    if (ec) break;
    const auto owner = detail::temp_file_owner(it->path().filename().string());
    if (!owner || *owner == ::getpid() || !detail::process_is_gone(*owner)) continue;
    std::error_code rm;
    if (std::filesystem::remove(it->path(), rm)) removed.push_back(it->path());
  }
  return removed;
}

// Saves `store` as <dir>/ckpt-<step>.kiln (creating dir), then deletes the oldest checkpoints of
// dir with a step below `step` while more than `keep_last` remain (keep_last <= 0 keeps every
// one). The new file and checkpoints with a higher step are never deleted. Returns the new file.
inline std::filesystem::path save_checkpoint(const variables& store, const std::filesystem::path& dir, std::int64_t step, int keep_last = 5) {
  if (step < 0) throw error("kiln: checkpoint step must be >= 0, got " + std::to_string(step));
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw error("kiln: cannot create checkpoint directory " + dir.string() + ": " + ec.message());
  const auto file = checkpoint_path(dir, step);
  write_checkpoint(store, file, step);
  if (keep_last > 0) {
    const auto all = list_checkpoints(dir);
    std::size_t remaining = all.size();
    // A stale file that cannot be deleted costs disk space, not correctness: the new one is saved.
    for (std::size_t i = 0; i < all.size() && remaining > std::size_t(keep_last) && all[i].first < step; ++i)
      if (std::filesystem::remove(all[i].second, ec)) --remaining;
    detail::sync_directory(dir);
  }
  return file;
}

// What a directory holding checkpoints newer than the starting step means to a new run.
enum class existing_checkpoints {
  refuse,     // an error before training (the default: they may be another run's work)
  overwrite,  // delete them before the first save
};

// Periodic saving into one directory and resuming from its newest valid checkpoint.
class checkpoint_manager {
 public:
  struct restored_checkpoint {
    std::filesystem::path file;
    std::int64_t step = 0;
    std::vector<std::string> skipped;  // "<file>: <why>" for each newer file that was unusable
  };

  // Removes the temporary files of writers that died mid-save (see remove_stale_temp_files).
  explicit checkpoint_manager(std::filesystem::path dir, int keep_last = 5) : dir_(std::move(dir)), keep_last_(keep_last) {
    remove_stale_temp_files(dir_);
  }

  std::filesystem::path save(const variables& store, std::int64_t step) { return save_checkpoint(store, dir_, step, keep_last_); }
  std::optional<std::filesystem::path> latest() const { return latest_checkpoint(dir_); }

  // Restores the newest checkpoint that reads back intact and whose header step matches its name;
  // the step, or nullopt when the directory holds none (or none valid). Each unusable newer file
  // is reported on stderr and moved aside to <name>.corrupt. A valid file that does not fit the
  // store (another model) throws, leaving the store as it was: an older file would not fit either.
  std::optional<std::int64_t> restore_latest(variables& store) {
    restored_.reset();
    std::vector<std::string> skipped;
    auto all = list_checkpoints(dir_);
    for (auto it = all.rbegin(); it != all.rend(); ++it) {
      const auto& [named_step, file] = *it;
      std::string problem;
      try {
        const std::int64_t header_step = read_checkpoint_contents(file).step;
        if (header_step != named_step)
          problem = "its name says step " + std::to_string(named_step) + " but its header says step " + std::to_string(header_step);
      } catch (const error& e) {
        // "kiln: checkpoint <file> is truncated: ..." -> "it is truncated: ..." (the file is named once)
        const std::string prefix = "kiln: checkpoint " + file.string() + " ";
        problem = e.what();
        if (problem.starts_with(prefix)) problem = "it " + problem.substr(prefix.size());
      }
      if (problem.empty()) {
        const std::int64_t step = restore_checkpoint(store, file).step;
        restored_ = restored_checkpoint{file, step, std::move(skipped)};
        return step;
      }
      std::filesystem::path aside = file;
      aside += ".corrupt";
      std::error_code ec;
      std::filesystem::rename(file, aside, ec);
      const std::string where = ec ? " (could not move it aside: " + ec.message() + ")" : "; moved it to " + aside.string();
      std::fprintf(stderr, "kiln: warning: skipping checkpoint %s: %s%s; trying the next older one\n", file.string().c_str(), problem.c_str(),
                   where.c_str());
      skipped.push_back(file.string() + ": " + problem);
      if (ec) unusable_.push_back(file);
    }
    if (!skipped.empty())
      std::fprintf(stderr, "kiln: warning: no valid checkpoint in %s (%zu unusable); starting from scratch\n", dir_.string().c_str(), skipped.size());
    return std::nullopt;
  }
  // The file and step of the last restore_latest, if it restored one.
  const std::optional<restored_checkpoint>& restored() const { return restored_; }

  // Before training from `start_step` (0 for a new run, the restored step for a resume): checks
  // that the directory can be created and written (so a bad path fails before hours of training,
  // not at the first save) and that it holds no checkpoint newer than start_step, which would be
  // another run's work: refused with an error, or deleted under existing_checkpoints::overwrite.
  void prepare(std::int64_t start_step, existing_checkpoints existing = existing_checkpoints::refuse) {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (ec) throw error("kiln: cannot create checkpoint directory " + dir_.string() + ": " + ec.message());
    {
      // write_checkpoint's own temp-file class: the probe goes wherever a save would go.
      detail::temp_file probe(dir_ / (".ckpt-write-test.tmp-" + std::to_string(::getpid())));
      const char byte = 0;
      probe.write(&byte, 1);
      probe.sync_and_close();
    }
    std::vector<std::filesystem::path> newer;
    for (const auto& [step, file] : list_checkpoints(dir_))
      if (step > start_step && std::find(unusable_.begin(), unusable_.end(), file) == unusable_.end()) newer.push_back(file);
    if (newer.empty()) return;
    if (existing == existing_checkpoints::overwrite) {
      for (const auto& file : newer)
        if (!std::filesystem::remove(file, ec) && ec)
          throw error("kiln: cannot delete old checkpoint " + file.string() + " before overwriting: " + ec.message());
      detail::sync_directory(dir_);
      return;
    }
    throw error("kiln: checkpoint directory " + dir_.string() + " already holds " + std::to_string(newer.size()) + " checkpoint" +
                (newer.size() > 1 ? "s" : "") + " newer than step " + std::to_string(start_step) + " where this run starts (newest " +
                newer.back().filename().string() + "), from another run or one that was not resumed. Resume it (restore the newest " +
                "checkpoint first; --resume in the examples), use a fresh directory, or pass existing_checkpoints::overwrite to delete them");
  }

  const std::filesystem::path& directory() const { return dir_; }

 private:
  std::filesystem::path dir_;
  int keep_last_;
  std::optional<restored_checkpoint> restored_;
  std::vector<std::filesystem::path> unusable_;  // bad files that could not be moved aside
};

}  // namespace kiln::io
