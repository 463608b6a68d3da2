// SIMD versions of the elementwise math, on Eigen's packet primitives. An op without an entry
// here runs through the scalar math of ops/elementwise.hpp (which g++ may still vectorize).
#pragma once
#include <array>
#include <utility>
#include <Eigen/Core>
#include "../../graph/node.hpp"

namespace kiln::cpu_detail {

// Eigen's packet typedefs carry vector attributes that g++ warns about when they are used as
// template arguments; the warning is harmless here and would otherwise reach every user. (The
// matching pop is at the end of this file.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
using packet_f32 = Eigen::internal::packet_traits<float>::type;
inline constexpr int packet_width = Eigen::internal::unpacket_traits<packet_f32>::size;

namespace ei = Eigen::internal;

// Masked loads and stores (AVX, AVX-512): a loop's last partial packet stays in SIMD.
inline constexpr bool has_masked_tail =
    ei::unpacket_traits<packet_f32>::masked_load_available && ei::unpacket_traits<packet_f32>::masked_store_available;

// The first n (0 < n < packet_width) floats at p, the other lanes zero; nothing past p + n is read.
template <class Packet = packet_f32> KILN_INLINE Packet ploadu_first(const float* p, std::int64_t n) {
  using mask_t = typename ei::unpacket_traits<Packet>::mask_t;
  return ei::ploadu<Packet>(p, mask_t((1u << unsigned(n)) - 1u));
}
// Stores the first n (0 < n < packet_width) lanes of v at p; nothing past p + n is written.
template <class Packet = packet_f32> KILN_INLINE void pstoreu_first(float* p, const Packet& v, std::int64_t n) {
  using mask_t = typename ei::unpacket_traits<Packet>::mask_t;
  ei::pstoreu<float>(p, v, mask_t((1u << unsigned(n)) - 1u));
}

// tanh: Eigen's rational approximation (the same coefficients and steps as
// Eigen::internal::generic_fast_tanh_float, so results are bit-identical to ei::ptanh), forced
// inline: g++ keeps Eigen's version out of line, and that call spills every live vector register.
KILN_INLINE packet_f32 packet_tanh(packet_f32 a) {
#ifdef EIGEN_VECTORIZE_FMA
  const packet_f32 clamp = ei::pset1<packet_f32>(7.99881172180175781f);
#else
  const packet_f32 clamp = ei::pset1<packet_f32>(7.90531110763549805f);
#endif
  const packet_f32 x = ei::pmax(ei::pmin(a, clamp), ei::pnegate(clamp));
  const packet_f32 tiny_mask = ei::pcmp_lt(ei::pabs(a), ei::pset1<packet_f32>(0.0004f));
  const packet_f32 x2 = ei::pmul(x, x);
  packet_f32 p = ei::pmadd(x2, ei::pset1<packet_f32>(-2.76076847742355e-16f), ei::pset1<packet_f32>(2.00018790482477e-13f));
  p = ei::pmadd(x2, p, ei::pset1<packet_f32>(-8.60467152213735e-11f));
  p = ei::pmadd(x2, p, ei::pset1<packet_f32>(5.12229709037114e-08f));
  p = ei::pmadd(x2, p, ei::pset1<packet_f32>(1.48572235717979e-05f));
  p = ei::pmadd(x2, p, ei::pset1<packet_f32>(6.37261928875436e-04f));
  p = ei::pmadd(x2, p, ei::pset1<packet_f32>(4.89352455891786e-03f));
  p = ei::pmul(x, p);
  packet_f32 q = ei::pmadd(x2, ei::pset1<packet_f32>(1.19825839466702e-06f), ei::pset1<packet_f32>(1.18534705686654e-04f));
  q = ei::pmadd(x2, q, ei::pset1<packet_f32>(2.26843463243900e-03f));
  q = ei::pmadd(x2, q, ei::pset1<packet_f32>(4.89352518554385e-03f));
  return ei::pselect(tiny_mask, x, ei::pdiv(p, q));
}

// sigmoid: with FMA, Eigen's logistic (a rational approximation, with exp only where x < -9),
// faster than 1 / (1 + exp(-x)) and as accurate (a few ulp). Without FMA (plain x86-64: SSE2) the
// same polynomial, evaluated with a rounding after every multiply, is off by up to 2.5e-5
// relative near x = -5 (found by the portable CI pass, tools/test.sh --portable), so there it is
// 1 / (1 + exp(-x)), whose packet exp keeps a few ulp (exp(-x) overflowing to inf gives 0).
KILN_INLINE packet_f32 packet_sigmoid(packet_f32 x) {
#ifdef EIGEN_VECTORIZE_FMA
  return ei::scalar_logistic_op<float>().packetOp(x);
#else
  const packet_f32 one = ei::pset1<packet_f32>(1.f);
  return ei::pdiv(one, ei::padd(one, ei::pexp(ei::pnegate(x))));
#endif
}

// The SIMD math of an op: one specialization per op, apply(x) for unary ops and apply(a, b) for
// binary ones. This is the only list: has_packet_math() below is derived from it, so an op gains
// its packet path (and the fused loops' choice of it) by this one specialization.
template <op O> struct packet_math {};  // no packet math: the op runs through its scalar math

#define KILN_PACKET_UNARY(NAME, EXPR) \
  template <> struct packet_math<op::NAME> { KILN_INLINE static packet_f32 apply(packet_f32 x) { return EXPR; } };
#define KILN_PACKET_BINARY(NAME, EXPR) \
  template <> struct packet_math<op::NAME> { KILN_INLINE static packet_f32 apply(packet_f32 a, packet_f32 b) { return EXPR; } };
KILN_PACKET_UNARY(neg, ei::pnegate(x))
KILN_PACKET_UNARY(abs, ei::pabs(x))
KILN_PACKET_UNARY(exp, ei::pexp(x))
KILN_PACKET_UNARY(log, ei::plog(x))
KILN_PACKET_UNARY(sqrt, ei::psqrt(x))
KILN_PACKET_UNARY(rsqrt, ei::pdiv(ei::pset1<packet_f32>(1.f), ei::psqrt(x)))
KILN_PACKET_UNARY(square, ei::pmul(x, x))
KILN_PACKET_UNARY(tanh, packet_tanh(x))
KILN_PACKET_UNARY(sigmoid, packet_sigmoid(x))
KILN_PACKET_UNARY(relu, ei::pmax(x, ei::pzero(x)))
KILN_PACKET_UNARY(softplus, ei::padd(ei::pmax(x, ei::pzero(x)), ei::plog1p(ei::pexp(ei::pnegate(ei::pabs(x))))))
KILN_PACKET_UNARY(log1p, ei::plog1p(x))
KILN_PACKET_BINARY(add, ei::padd(a, b))
KILN_PACKET_BINARY(sub, ei::psub(a, b))
KILN_PACKET_BINARY(mul, ei::pmul(a, b))
KILN_PACKET_BINARY(div, ei::pdiv(a, b))
KILN_PACKET_BINARY(minimum, ei::pmin(a, b))
KILN_PACKET_BINARY(maximum, ei::pmax(a, b))
#undef KILN_PACKET_UNARY
#undef KILN_PACKET_BINARY

template <op O>
concept has_packet_specialization = requires(packet_f32 p) { packet_math<O>::apply(p); } || requires(packet_f32 p) { packet_math<O>::apply(p, p); };

template <std::size_t... I> constexpr std::array<bool, op_count> packet_math_table(std::index_sequence<I...>) {
  return {has_packet_specialization<op(I)>...};
}
inline constexpr std::array<bool, op_count> ops_with_packet_math = packet_math_table(std::make_index_sequence<op_count>{});

// Whether elementwise op `o` has SIMD math. (Immediates -- scalar, fill, iota -- are leaves the
// fused loop broadcasts or counts itself; comparisons, logic, select and casts have lane forms of
// their own in backends/cpu/fused.hpp.)
constexpr bool has_packet_math(op o) { return ops_with_packet_math[std::size_t(o)]; }
static_assert(has_packet_math(op::exp) && has_packet_math(op::maximum) && !has_packet_math(op::sign) && !has_packet_math(op::scalar),
              "kiln: the packet-math table must be derived from the specializations above");

template <op O, class... Packets> KILN_INLINE packet_f32 packet_apply(Packets... p) { return packet_math<O>::apply(p...); }

// Calls f(std::integral_constant<int, i>{}) for i in [0, n): unrolled in the source, so that
// arrays of packets indexed by i stay in registers.
template <int n, class F> KILN_INLINE void static_for(F&& f) {
  [&]<int... i>(std::integer_sequence<int, i...>) { (f(std::integral_constant<int, i>{}), ...); }(std::make_integer_sequence<int, n>{});
}

// Comparisons as lane masks (every bit set where true), with the scalar operators' NaN rules: false
// wherever an operand is NaN, except not_equal, which is true there.
template <op O> KILN_INLINE packet_f32 packet_compare(packet_f32 a, packet_f32 b) {
  if constexpr (O == op::less) return ei::pcmp_lt(a, b);
  else if constexpr (O == op::less_equal) return ei::pcmp_le(a, b);
  else if constexpr (O == op::greater) return ei::pcmp_lt(b, a);
  else if constexpr (O == op::greater_equal) return ei::pcmp_le(b, a);
  else if constexpr (O == op::equal) return ei::pcmp_eq(a, b);
  else if constexpr (O == op::not_equal) return ei::pandnot(ei::ptrue(a), ei::pcmp_eq(a, b));
  else static_assert(O == op::less, "not a comparison");
}

}  // namespace kiln::cpu_detail

#pragma GCC diagnostic pop
