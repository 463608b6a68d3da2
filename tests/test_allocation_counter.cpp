// The allocation counter (allocation_counter.hpp) itself: the "allocates nothing" tests are only
// as good as what it sees. Every way a library allocates must count, including the ones that
// bypass operator new (Eigen's buffers, a plain malloc).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cstdlib>
#include <memory>
#include <new>
#include <vector>
#include <Eigen/Core>

#include "allocation_counter.hpp"

namespace {

// Keeps the compiler from proving the allocation unused and removing it (malloc/free pairs may
// be elided otherwise).
void escape(void* p) { asm volatile("" : : "g"(p) : "memory"); }

long allocations_during(auto&& f) {
  const long before = g_allocations.load();
  f();
  return g_allocations.load() - before;
}

}  // namespace

// The allocator-level cases report SKIP in AddressSanitizer builds (allocation_counter.hpp says why).
TEST_CASE("allocation_counter.counts_malloc_of_one_mebibyte" * doctest::skip(!g_counts_at_the_allocator)) {
  CHECK(allocations_during([] {
          void* p = std::malloc(1 << 20);
          escape(p);
          std::free(p);
        }) >= 1);
}

TEST_CASE("allocation_counter.counts_eigen_vectors" * doctest::skip(!g_counts_at_the_allocator)) {
  CHECK(allocations_during([] {
          Eigen::VectorXf v(100000);
          escape(v.data());
        }) >= 1);
}

TEST_CASE("allocation_counter.counts_every_allocator_entry" * doctest::skip(!g_counts_at_the_allocator)) {
  CHECK(allocations_during([] {
          void* p = std::calloc(1000, 8);
          escape(p);
          std::free(p);
        }) >= 1);
  CHECK(allocations_during([] {
          void* p = std::realloc(nullptr, 4096);
          escape(p);
          std::free(p);
        }) >= 1);
  CHECK(allocations_during([] {
          void* p = std::aligned_alloc(64, 4096);
          escape(p);
          std::free(p);
        }) >= 1);
  CHECK(allocations_during([] {
          void* p = nullptr;
          REQUIRE(posix_memalign(&p, 64, 4096) == 0);
          escape(p);
          std::free(p);
        }) >= 1);
}

TEST_CASE("allocation_counter.counts_operator_new") {
  CHECK(allocations_during([] {
          auto p = std::make_unique<int>(3);
          escape(p.get());
        }) >= 1);
  CHECK(allocations_during([] {
          std::vector<double> v(1000);
          escape(v.data());
        }) >= 1);
}

TEST_CASE("allocation_counter.counts_nothing_without_allocations") {
  std::vector<double> v(1000, 1.0);
  double sum = 0;
  CHECK(allocations_during([&] {
          for (double x : v) sum += x;
        }) == 0);
  CHECK(sum == 1000.0);
}
