#pragma once
#if defined(__CUDACC__)
#define KILN_HD __host__ __device__
#else
#define KILN_HD
#endif
#define KILN_INLINE inline __attribute__((always_inline))
