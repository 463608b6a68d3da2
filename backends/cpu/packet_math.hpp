// SIMD versions of the elementwise math, on Eigen's packet primitives. An op without an entry
// here runs through the scalar math of ops/elementwise.hpp (which g++ may still vectorize).
#pragma once
#include <Eigen/Core>
#include "../../graph/node.hpp"

namespace kiln::cpu_detail {

// Eigen's packet typedefs carry vector attributes that g++ warns about when they are used as
// template arguments; the warning is harmless here and would otherwise reach every user.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
using packet_f32 = Eigen::internal::packet_traits<float>::type;
inline constexpr int packet_width = Eigen::internal::unpacket_traits<packet_f32>::size;
#pragma GCC diagnostic pop

namespace ei = Eigen::internal;

constexpr bool has_packet_math(op o) {
  switch (o) {
    case op::neg: case op::abs: case op::exp: case op::log: case op::sqrt: case op::rsqrt: case op::square:
    case op::tanh: case op::sigmoid: case op::relu: case op::softplus:
    case op::add: case op::sub: case op::mul: case op::div: case op::minimum: case op::maximum:
    case op::scalar: case op::fill: case op::iota:
      return true;
    default: return false;
  }
}

template <op O> KILN_INLINE packet_f32 packet_apply(packet_f32 x) {
  if constexpr (O == op::neg) return ei::pnegate(x);
  else if constexpr (O == op::abs) return ei::pabs(x);
  else if constexpr (O == op::exp) return ei::pexp(x);
  else if constexpr (O == op::log) return ei::plog(x);
  else if constexpr (O == op::sqrt) return ei::psqrt(x);
  else if constexpr (O == op::rsqrt) return ei::pdiv(ei::pset1<packet_f32>(1.f), ei::psqrt(x));
  else if constexpr (O == op::square) return ei::pmul(x, x);
  else if constexpr (O == op::tanh) return ei::ptanh(x);
  else if constexpr (O == op::sigmoid) {
    const packet_f32 one = ei::pset1<packet_f32>(1.f);
    return ei::pdiv(one, ei::padd(one, ei::pexp(ei::pnegate(x))));
  } else if constexpr (O == op::relu) return ei::pmax(x, ei::pzero(x));
  else if constexpr (O == op::softplus) return ei::padd(ei::pmax(x, ei::pzero(x)), ei::plog1p(ei::pexp(ei::pnegate(ei::pabs(x)))));
  else static_assert(O == op::neg, "no packet math for this unary op");
}

template <op O> KILN_INLINE packet_f32 packet_apply(packet_f32 a, packet_f32 b) {
  if constexpr (O == op::add) return ei::padd(a, b);
  else if constexpr (O == op::sub) return ei::psub(a, b);
  else if constexpr (O == op::mul) return ei::pmul(a, b);
  else if constexpr (O == op::div) return ei::pdiv(a, b);
  else if constexpr (O == op::minimum) return ei::pmin(a, b);
  else if constexpr (O == op::maximum) return ei::pmax(a, b);
  else static_assert(O == op::add, "no packet math for this binary op");
}

}  // namespace kiln::cpu_detail
