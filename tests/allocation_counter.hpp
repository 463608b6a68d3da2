// Counts every heap allocation of the test program at the allocator, for the "no allocation per
// step / per batch / per sample" checks: operator new, std::vector, Eigen's aligned buffers, oneTBB
// and plain malloc all end in malloc, calloc, realloc, aligned_alloc, posix_memalign or memalign.
// Include it in exactly one translation unit of a test executable; read g_allocations before and
// after the code under test.
//
// - Ordinary builds: this file defines those functions in the executable, which takes precedence
//   over libc's for every shared library too (libstdc++'s operator new included), and forwards
//   them to glibc's own entry points (__libc_malloc and friends).
// - AddressSanitizer builds: ASan owns malloc and its interceptors must stay in place; its
//   allocator calls the hook installed below on every allocation instead.
#pragma once
#include <atomic>
#include <cerrno>
#include <cstddef>

namespace {
std::atomic<long> g_allocations{0};
std::atomic<long> g_frees{0};
inline void count_allocation() { g_allocations.fetch_add(1, std::memory_order_relaxed); }
}  // namespace

#if defined(__SANITIZE_ADDRESS__)

extern "C" int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void*, std::size_t),
                                                         void (*free_hook)(const volatile void*));
namespace {
const bool g_allocation_hooks_installed = [] {
  return __sanitizer_install_malloc_and_free_hooks([](const volatile void*, std::size_t) { count_allocation(); },
                                                   [](const volatile void* p) {
                                                     if (p) g_frees.fetch_add(1, std::memory_order_relaxed);
                                                   }) != 0;
}();
}  // namespace

#else

// (noexcept: glibc declares them __THROW, and the definitions must match)
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);

void* malloc(std::size_t n) noexcept {
  count_allocation();
  return __libc_malloc(n);
}
void* calloc(std::size_t count, std::size_t size) noexcept {
  count_allocation();
  return __libc_calloc(count, size);
}
void* realloc(void* p, std::size_t n) noexcept {
  count_allocation();  // may move the block: an allocation as far as a hot loop is concerned
  return __libc_realloc(p, n);
}
void* memalign(std::size_t alignment, std::size_t n) noexcept {
  count_allocation();
  return __libc_memalign(alignment, n);
}
void* aligned_alloc(std::size_t alignment, std::size_t n) noexcept {
  count_allocation();
  return __libc_memalign(alignment, n);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t n) noexcept {
  count_allocation();
  if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) return EINVAL;
  void* p = __libc_memalign(alignment, n);
  if (p == nullptr && n != 0) return ENOMEM;
  *out = p;
  return 0;
}
void free(void* p) noexcept {
  if (p) g_frees.fetch_add(1, std::memory_order_relaxed);
  __libc_free(p);
}
}  // extern "C"

namespace {
constexpr bool g_allocation_hooks_installed = true;
}  // namespace

#endif
