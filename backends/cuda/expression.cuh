// Device evaluation of fused elementwise expressions.
//
// nvcc rejects a __global__ template instantiated with anything that mentions a lambda's closure
// type, and kiln::program<Model> does. So a kernel never sees the program: the host side
// (fused.cuh) translates one fusion group of the node array into an expression *type* built only
// from ops, dtypes and small integers, plus a plain argument struct with the data pointers,
// strides and immediate values. The math itself is elementwise_math<op>::apply, shared with the
// CPU backend.
#pragma once
#include <cstdint>
#include <type_traits>
#include "../../graph/dtype.hpp"
#include "../../graph/node.hpp"
#include "../../ops/elementwise.hpp"

// Unrolling hint for the device pass only (host compilers warn about the unknown pragma).
#if defined(__CUDA_ARCH__)
#define KILN_UNROLL _Pragma("unroll")
#else
#define KILN_UNROLL
#endif

namespace kiln::cuda_detail {

// ---- expression types -------------------------------------------------------------------------

// A value read from a buffer: leaf[Leaf] at the leaf's offset.
template <int Leaf, dtype T> struct load {
  static constexpr dtype type = T;
};
// A scalar or fill: imm[Imm] converted to T.
template <dtype T, int Imm> struct immediate {
  static constexpr dtype type = T;
};
// numpy arange in row-major order: imm[Imm] + imm[Imm + 1] * (row-major index in its own shape).
template <int Leaf, dtype T, int Imm> struct arange {
  static constexpr dtype type = T;
};
// An op applied to sub-expressions (cast and select included).
template <op O, dtype T, class... In> struct apply {
  static constexpr dtype type = T;
};

template <class E> using value_t = ctype<E::type>;

// The same expression type, spelled without typedefs. nvcc's host stub names each kernel's
// template arguments as they were written, and a member typedef of a class templated on the
// program (fused_plan<P, ...>::expr) would drag the lambda's closure type into that text.
// Launchers therefore instantiate kernels with canonical_t<E> and canonical_args_t<Args> only.
template <class E> struct canonical;
template <int Leaf, dtype T> struct canonical<load<Leaf, T>> { using type = load<Leaf, T>; };
template <dtype T, int Imm> struct canonical<immediate<T, Imm>> { using type = immediate<T, Imm>; };
template <int Leaf, dtype T, int Imm> struct canonical<arange<Leaf, T, Imm>> { using type = arange<Leaf, T, Imm>; };
template <op O, dtype T, class... In> struct canonical<apply<O, T, In...>> { using type = apply<O, T, typename canonical<In>::type...>; };
template <class E> using canonical_t = typename canonical<E>::type;

// Everything a fused kernel reads at run time. L leaves, R collapsed loop dims, K immediates.
template <int L, int R, int K> struct fused_args {
  static constexpr int leaves = L, rank = R, immediates = K;
  const void* leaf[L > 0 ? L : 1]{};
  std::int64_t extent[R]{};
  std::int64_t stride[L > 0 ? L : 1][R]{};
  double imm[K > 0 ? K : 1]{};
};
template <class Args> using canonical_args_t = fused_args<Args::leaves, Args::rank, Args::immediates>;

// ---- evaluation ---------------------------------------------------------------------------------
// __host__ __device__ so that tests can check the generated expressions on machines without GPUs.

template <class E> struct device_eval;

template <int Leaf, dtype T> struct device_eval<load<Leaf, T>> {
  template <class Args, class I> KILN_HD __forceinline__ static ctype<T> at(const Args& a, const I* off) {
    return static_cast<const ctype<T>*>(a.leaf[Leaf])[off[Leaf]];
  }
};

template <dtype T, int Imm> struct device_eval<immediate<T, Imm>> {
  template <class Args, class I> KILN_HD __forceinline__ static ctype<T> at(const Args& a, const I*) {
    return static_cast<ctype<T>>(a.imm[Imm]);
  }
};

template <int Leaf, dtype T, int Imm> struct device_eval<arange<Leaf, T, Imm>> {
  // Computed in double like the CPU, so integer and float aranges agree bit for bit.
  template <class Args, class I> KILN_HD __forceinline__ static ctype<T> at(const Args& a, const I* off) {
    return static_cast<ctype<T>>(a.imm[Imm] + a.imm[Imm + 1] * double(off[Leaf]));
  }
};

template <op O, dtype T, class X> struct device_eval<apply<O, T, X>> {
  template <class Args, class I> KILN_HD __forceinline__ static ctype<T> at(const Args& a, const I* off) {
    if constexpr (O == op::cast) return static_cast<ctype<T>>(device_eval<X>::at(a, off));
    else return static_cast<ctype<T>>(elementwise_math<O>::apply(device_eval<X>::at(a, off)));
  }
};

template <op O, dtype T, class X, class Y> struct device_eval<apply<O, T, X, Y>> {
  template <class Args, class I> KILN_HD __forceinline__ static ctype<T> at(const Args& a, const I* off) {
    return static_cast<ctype<T>>(elementwise_math<O>::apply(device_eval<X>::at(a, off), device_eval<Y>::at(a, off)));
  }
};

template <dtype T, class C, class X, class Y> struct device_eval<apply<op::select, T, C, X, Y>> {
  template <class Args, class I> KILN_HD __forceinline__ static ctype<T> at(const Args& a, const I* off) {
    return device_eval<C>::at(a, off) ? device_eval<X>::at(a, off) : device_eval<Y>::at(a, off);
  }
};

// The expression at row-major position `linear` of the loop shape: split the position into
// collapsed coordinates and turn them into one offset per leaf (stride 0 where it broadcasts).
template <class E, class Args, class I> KILN_HD __forceinline__ value_t<E> value_at(const Args& a, I linear) {
  constexpr int L = Args::leaves > 0 ? Args::leaves : 1;
  I off[L];
KILN_UNROLL
  for (int l = 0; l < L; ++l) off[l] = 0;
  I rest = linear;
KILN_UNROLL
  for (int d = Args::rank - 1; d >= 0; --d) {
    I index = rest;
    if (d > 0) {
      const I extent = I(a.extent[d]);
      index = rest % extent;
      rest /= extent;
    }
KILN_UNROLL
    for (int l = 0; l < Args::leaves; ++l) off[l] += index * I(a.stride[l][d]);
  }
  return device_eval<E>::at(a, off);
}

}  // namespace kiln::cuda_detail
