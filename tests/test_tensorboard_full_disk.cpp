// TensorBoard on a full disk: a tfrecord writer on /dev/full (every write fails with ENOSPC) must
// report the failure with the path, keep the unwritten bytes and fail again on close. Its own
// executable so that a machine without /dev/full reports SKIP (exit 77, Meson's SKIP) instead of
// a pass that checked nothing. KILN_TEST_FULL_DEVICE names another device (to see the skip).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <io/tfrecord.hpp>

namespace {
std::string full_device() {
  const char* chosen = std::getenv("KILN_TEST_FULL_DEVICE");
  return chosen != nullptr ? chosen : "/dev/full";
}
}  // namespace

TEST_CASE("tensorboard.errors.full_disk") {
  const std::string device = full_device();
  kiln::io::tfrecord_writer w(device);
  w.write("some record");
  CHECK_THROWS_WITH_AS(w.flush(), doctest::Contains(device.c_str()), kiln::error);
  CHECK(w.pending_bytes() > 0);  // kept, not dropped
  CHECK_THROWS_AS(w.close(), kiln::error);
}

int main(int argc, char** argv) {
  const std::string device = full_device();
  if (!std::filesystem::exists(device)) {
    std::printf("%s does not exist: the full-disk test cannot run, skipped\n", device.c_str());
    return 77;  // Meson's SKIP
  }
  doctest::Context context(argc, argv);
  return context.run();
}
