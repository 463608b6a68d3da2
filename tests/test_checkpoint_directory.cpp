// The checkpoint directory policy (io/checkpoint_directory.hpp): a save never deletes the file it
// wrote nor a newer step, prepare() refuses another run's checkpoints (or deletes them when told),
// a resume skips a truncated or misnamed newest file for the newest valid one, and temporary
// files of writers killed mid-save are removed when a manager opens the directory.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <io/checkpoint_directory.hpp>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <fstream>
#include "test_util.hpp"

using namespace kiln;
namespace fs = std::filesystem;
using kt::contains;
using kt::message_of;

namespace {

// A fresh directory under /tmp, removed at scope exit.
struct temp_dir : kt::temp_dir {
  temp_dir() : kt::temp_dir("ckptdir") {}
};

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

constexpr auto tiny_model = [] {
  graph g;
  tensor w = g.variable("w", f32, {3}, init::zeros());
  tensor step = g.variable("step", i64, {}, init::zeros());
  g.output("step", assign_add(step, g.scalar(1, i64)));
  g.output("w", assign_add(w, g.fill({3}, 1.0, f32)));
  return g;
};
using executor = decltype(compile<cpu>(tiny_model));

// The store after `step` runs: w = step everywhere, step = step.
void set_state(executor& ex, std::int64_t step) {
  ex.variable<std::int64_t>("step").item() = step;
  for (float& v : ex.variable<float>("w").flat()) v = float(step);
}
std::int64_t step_in(executor& ex) { return ex.variable<std::int64_t>("step").item(); }

void truncate_to_half(const fs::path& file) { fs::resize_file(file, fs::file_size(file) / 2); }

}  // namespace

TEST_CASE("checkpoint_directory.save_never_deletes_its_own_file_or_newer_steps") {
  temp_dir dir;
  auto ex = compile<cpu>(tiny_model);
  for (std::int64_t step : {5, 6, 7}) {  // another run's newest three
    set_state(ex, step);
    io::save_checkpoint(ex.vars(), dir.path, step, 3);
  }
  // A new run writing step 1 with keep-last 3 used to lose ckpt-1 right after writing it.
  set_state(ex, 1);
  const auto mine = io::save_checkpoint(ex.vars(), dir.path, 1, 3);
  CHECK(fs::exists(mine));
  CHECK(names_in(dir.path) == std::vector<std::string>{"ckpt-1.kiln", "ckpt-5.kiln", "ckpt-6.kiln", "ckpt-7.kiln"});
  // Older steps are still pruned: step 8 keeps the newest three.
  set_state(ex, 8);
  io::save_checkpoint(ex.vars(), dir.path, 8, 3);
  CHECK(names_in(dir.path) == std::vector<std::string>{"ckpt-6.kiln", "ckpt-7.kiln", "ckpt-8.kiln"});
}

TEST_CASE("checkpoint_directory.prepare_refuses_newer_checkpoints_or_overwrites_them") {
  temp_dir dir;
  auto ex = compile<cpu>(tiny_model);
  io::checkpoint_manager manager(dir.path / "run", 5);
  manager.prepare(0);  // creates it; empty is fine
  CHECK(fs::is_directory(dir.path / "run"));
  for (std::int64_t step : {1, 2, 3}) {
    set_state(ex, step);
    manager.save(ex.vars(), step);
  }
  io::checkpoint_manager fresh(dir.path / "run", 5);
  const auto msg = message_of([&] { fresh.prepare(0); });
  CHECK(contains(msg, "already holds 3 checkpoints newer than step 0"));
  CHECK(contains(msg, "ckpt-3.kiln"));
  CHECK(contains(msg, "overwrite"));
  CHECK(contains(message_of([&] { fresh.prepare(2); }), "already holds 1 checkpoint newer than step 2 where this run starts (newest ckpt-3.kiln)"));
  fresh.prepare(3);  // a resume from step 3
  CHECK(names_in(dir.path / "run").size() == 3);
  fresh.prepare(1, io::existing_checkpoints::overwrite);
  CHECK(names_in(dir.path / "run") == std::vector<std::string>{"ckpt-1.kiln"});
  // Not writable: a plain file where the directory should be.
  std::ofstream(dir.path / "plain") << "x";
  io::checkpoint_manager blocked(dir.path / "plain" / "run");
  CHECK(contains(message_of([&] { blocked.prepare(0); }), "cannot create checkpoint directory " + (dir.path / "plain" / "run").string()));
}

TEST_CASE("checkpoint_directory.resume_falls_back_past_a_truncated_newest_file") {
  temp_dir dir;
  auto ex = compile<cpu>(tiny_model);
  io::checkpoint_manager manager(dir.path, 5);
  for (std::int64_t step : {1, 2, 3}) {
    set_state(ex, step);
    manager.save(ex.vars(), step);
  }
  truncate_to_half(dir.path / "ckpt-3.kiln");
  auto other = compile<cpu>(tiny_model);
  CHECK(manager.restore_latest(other.vars()) == 2);
  CHECK(step_in(other) == 2);
  CHECK(other.variable<float>("w").flat()[0] == 2.0f);
  REQUIRE(manager.restored());
  CHECK(manager.restored()->file == dir.path / "ckpt-2.kiln");
  REQUIRE(manager.restored()->skipped.size() == 1);
  CHECK(contains(manager.restored()->skipped[0], (dir.path / "ckpt-3.kiln").string() + ": "));
  CHECK(contains(manager.restored()->skipped[0], "truncated"));
  // The bad file is kept for inspection but steers no later resume.
  CHECK(names_in(dir.path) == std::vector<std::string>{"ckpt-1.kiln", "ckpt-2.kiln", "ckpt-3.kiln.corrupt"});
  CHECK(manager.latest() == dir.path / "ckpt-2.kiln");
  // Every file bad: nothing restored, the store untouched.
  truncate_to_half(dir.path / "ckpt-1.kiln");
  truncate_to_half(dir.path / "ckpt-2.kiln");
  auto third = compile<cpu>(tiny_model);
  set_state(third, 42);
  CHECK(!manager.restore_latest(third.vars()));
  CHECK(step_in(third) == 42);
}

TEST_CASE("checkpoint_directory.resume_checks_the_header_step_against_the_name") {
  temp_dir dir;
  auto ex = compile<cpu>(tiny_model);
  set_state(ex, 3);
  io::save_checkpoint(ex.vars(), dir.path, 3);
  // Another run's step-5 file copied in as ckpt-9.kiln: its name must not steer the resume.
  temp_dir elsewhere;
  set_state(ex, 5);
  const auto foreign = io::save_checkpoint(ex.vars(), elsewhere.path, 5);
  fs::copy_file(foreign, dir.path / "ckpt-9.kiln");
  io::checkpoint_manager manager(dir.path);
  auto other = compile<cpu>(tiny_model);
  CHECK(manager.restore_latest(other.vars()) == 3);
  CHECK(step_in(other) == 3);
  REQUIRE(manager.restored());
  REQUIRE(manager.restored()->skipped.size() == 1);
  CHECK(contains(manager.restored()->skipped[0], "its name says step 9 but its header says step 5"));
  CHECK(fs::exists(dir.path / "ckpt-9.kiln.corrupt"));
}

TEST_CASE("checkpoint_directory.stale_temp_files_of_dead_writers_are_removed") {
  temp_dir dir;
  // A pid that no longer runs: a child that has exited and been reaped.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) ::_exit(0);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  const std::string dead = ".ckpt-4.kiln.tmp-" + std::to_string(child);
  const std::string alive = ".ckpt-5.kiln.tmp-" + std::to_string(::getppid());  // a live writer's save in progress
  const std::string own = ".ckpt-6.kiln.tmp-" + std::to_string(::getpid());
  for (const auto& name : {dead, alive, own, std::string("notes.tmp-1"), std::string(".ckpt-7.kiln.tmp-x")}) std::ofstream(dir.path / name) << "partial";
  io::checkpoint_manager manager(dir.path);
  const auto left = names_in(dir.path);
  CHECK(std::find(left.begin(), left.end(), dead) == left.end());
  CHECK(std::find(left.begin(), left.end(), alive) != left.end());
  CHECK(std::find(left.begin(), left.end(), own) != left.end());
  CHECK(left.size() == 4);  // the others are not ours to delete
}
