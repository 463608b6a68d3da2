// Counts every heap allocation of the test program at the allocator, for the "no allocation per
// step / per batch / per sample" checks: operator new, std::vector, Eigen's aligned buffers, oneTBB
// and plain malloc all end in malloc, calloc, realloc, aligned_alloc, posix_memalign or memalign.
// Include it in exactly one translation unit of a test executable; read g_allocations before and
// after the code under test.
//
// - Ordinary builds: this file defines those functions in the executable, which takes precedence
//   over libc's for every shared library too (libstdc++'s operator new included), and forwards
//   them to glibc's own entry points (__libc_malloc and friends).
// - AddressSanitizer builds: operator new only (see below why).
#pragma once
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace {
std::atomic<long> g_allocations{0};
[[maybe_unused]] std::atomic<long> g_frees{0};
inline void count_allocation() { g_allocations.fetch_add(1, std::memory_order_relaxed); }
}  // namespace

#if defined(__SANITIZE_ADDRESS__)

// ASan owns malloc (its interceptors must stay in place), and its allocator hook
// (__sanitizer_install_malloc_and_free_hooks) also sees ASan's own allocations, e.g. the realloc in
// pthread_getattr_np when a oneTBB worker starts mid-measurement: the "allocates nothing" tests
// would fail at random. This build counts operator new only (replaced below, forwarding to ASan's
// malloc); the allocator-level counting is checked by the ordinary builds, and the self-test's
// malloc and Eigen cases report SKIP here.
namespace {
constexpr bool g_counts_at_the_allocator = false;
void* counted(std::size_t n, std::size_t align = 0) {
  count_allocation();
  if (n == 0) n = 1;
  void* p = nullptr;
  if (align > alignof(std::max_align_t)) {
    if (posix_memalign(&p, align, n) != 0) p = nullptr;
  } else {
    p = std::malloc(n);
  }
  if (!p) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(std::size_t n) { return counted(n); }
void* operator new[](std::size_t n) { return counted(n); }
void* operator new(std::size_t n, std::align_val_t a) { return counted(n, std::size_t(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted(n, std::size_t(a)); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try { return counted(n); } catch (...) { return nullptr; }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try { return counted(n); } catch (...) { return nullptr; }
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try { return counted(n, std::size_t(a)); } catch (...) { return nullptr; }
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try { return counted(n, std::size_t(a)); } catch (...) { return nullptr; }
}
// (GCC flags free() of a pointer from operator new once inlined; here that pairing is the design)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
#pragma GCC diagnostic pop

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
constexpr bool g_counts_at_the_allocator = true;
}  // namespace

#endif
