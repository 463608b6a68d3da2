// The work of one run of a compiled plan, for the roofline table (tools/roofline.sh):
//   flops  2·M·N·K per matrix product (convolutions are im2col + a product after lowering), one per
//          element for every other arithmetic node, one per input element for reductions;
//   bytes  per group of the schedule, the bytes it writes plus the bytes of every buffer it reads:
//          the memory traffic of the schedule if no group found its inputs in cache. Real traffic
//          is lower where a producer's output is still in cache when its consumer runs, so
//          bytes / time can exceed the DRAM bandwidth; it is the traffic tiling would remove.
// Printed as `<tag>_flops_per_step` and `<tag>_bytes_per_step` lines.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include "graph/program.hpp"
#include "runtime/binding.hpp"

namespace bench {

struct plan_work {
  double flops = 0, bytes = 0;
};

// FLOPs of the matrix product node `id`: 2 · elements(a) · N, where N is the product's last
// extent (a [..,M,K] or [..,K,M] with a transpose, folded rows included: every element of a meets
// N columns of b).
template <class P> double matmul_flops(int id, std::int64_t batch_size) {
  const kiln::node& n = P::nodes[std::size_t(id)];
  const kiln::node& a = P::nodes[std::size_t(n.in[0])];
  return 2.0 * double(a.out.elements(batch_size)) * double(n.out.dim[n.out.rank - 1]);
}

template <class P> plan_work work_of_plan(std::int64_t batch_size) {
  using namespace kiln;
  plan_work w;
  const auto& p = P::plan;
  for (int g = 0; g < p.n_groups; ++g) {
    const group_info& gi = p.groups[std::size_t(g)];
    if (gi.anchor >= 0) w.flops += matmul_flops<P>(gi.anchor, batch_size);
    for (const int i : p.members_of(g)) {
      const node& n = P::nodes[std::size_t(i)];
      if (n.kind == op::matmul) w.flops += matmul_flops<P>(i, batch_size);
      else if (family_of(n.kind) == op_family::elementwise && !is_immediate(n.kind)) w.flops += double(n.out.elements(batch_size));
      else if (family_of(n.kind) == op_family::reduction) w.flops += double(P::nodes[std::size_t(n.in[0])].out.elements(batch_size));
    }
    w.bytes += double(value_bytes<P>(gi.root, batch_size));
    std::array<bool, P::N + 1> seen{};
    kiln::detail::for_each_buffer_input(P::nodes, p, g, [&](int x) {
      const int r = p.storage_root(x);
      if (seen[std::size_t(r)]) return;
      seen[std::size_t(r)] = true;
      w.bytes += double(value_bytes<P>(r, batch_size));
    });
  }
  return w;
}

template <class P> void print_plan_work(const std::string& tag, std::int64_t batch_size) {
  const plan_work w = work_of_plan<P>(batch_size);
  std::printf("%s_flops_per_step: %.6g\n", tag.c_str(), w.flops);
  std::printf("%s_bytes_per_step: %.6g\n", tag.c_str(), w.bytes);
}

}  // namespace bench
