// The CUDA executor. Same shape as the CPU one: everything about the graph was decided at compile
// time; at run time it binds feeds, owns a device arena per batch size (allocated once, reused),
// and launches one kernel (or cuBLAS call) per group of the plan, in schedule order, on its own
// stream. Host feeds are copied in, outputs are copied back into pinned buffers it owns.
//
// Kernels are never templated on the program (see expression.cuh for why); the *_plan structs
// below are host code that may mention P and hand kernels P-free types and argument structs.
#pragma once
#include <array>
#include <concepts>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>
#include "../../graph/program.hpp"
#include "../../runtime/variables.hpp"
#include "../../runtime/view.hpp"
#include "check.cuh"
#include "fused.cuh"
#include "layout.cuh"
#include "matmul.cuh"
#include "memory.cuh"
#include "../../runtime/outputs.hpp"
#include "reduce.cuh"
#include "window.cuh"

namespace kiln {

struct cuda {};

struct cuda_options {
  int device = 0;
  // Capture the kernels of a run as a CUDA graph and replay it while the batch size and the
  // feed pointers stay the same: one launch instead of one per group (small graphs gain most).
  bool use_graphs = false;
  // Let cuBLAS run f32 matmuls on TF32 tensor cores: much faster on Ampere and later, with
  // about 1e-3 relative error. Off by default so results match the CPU closely.
  bool allow_tf32 = false;
};

template <class P> class cuda_executor {
 public:
  using program_type = P;
  static constexpr std::size_t N = P::N;
  static constexpr std::size_t NO = P::NO;

  explicit cuda_executor(variables* host_store = nullptr, cuda_options options = {}) : store_(host_store), options_(options) {
    static_assert(P::ok);
    if (!store_) {
      owned_store_ = std::make_unique<variables>();
      store_ = owned_store_.get();
    }
    cuda_detail::device_scope on(options_.device);
    cudaStream_t s = nullptr;
    KILN_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    stream_.reset(s);
    int sms = 0;
    KILN_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, options_.device));
    max_blocks_ = sms * (2048 / cuda_detail::block_threads);
    if constexpr (has_matmul) {
      cublasHandle_t h = nullptr;
      KILN_CUDA(cublasCreate(&h));
      cublas_.reset(h);
      KILN_CUDA(cublasSetStream(h, stream_.get()));
      // An explicit workspace keeps cuBLAS from allocating inside a graph capture.
      workspace_.reset(cublas_workspace_bytes);
      KILN_CUDA(cublasSetWorkspace(h, workspace_.data(), workspace_.size()));
      KILN_CUDA(cublasSetMathMode(h, options_.allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    }
    bind_variables_and_constants();
    for (std::size_t i = 0; i < NO; ++i) outputs_.names[i] = P::outputs[i].name.view();
  }

  cuda_executor(const cuda_executor&) = delete;
  cuda_executor& operator=(const cuda_executor&) = delete;
  cuda_executor(cuda_executor&&) noexcept = default;
  cuda_executor& operator=(cuda_executor&&) noexcept = default;
  ~cuda_executor() {
    if (stream_) (void)cudaStreamSynchronize(stream_.get());
  }

  // Host feeds in, host outputs out (in pinned buffers owned by the executor, valid until the
  // next run). Allocates only when a batch size needs more memory than any before it.
  const run_outputs<NO>& run(std::initializer_list<feed> feeds = {}) { return run(std::span<const feed>(feeds.begin(), feeds.size())); }
  const run_outputs<NO>& run(std::span<const feed> feeds) {
    cuda_detail::device_scope on(options_.device);
    std::array<const void*, std::size_t(P::plan.n_feeds) + 1> host{};
    const std::int64_t batch_size = bind_feeds(feeds, host);
    prepare(batch_size);
    for (int i = 0; i < P::plan.n_feeds; ++i) {
      const int id = P::plan.feeds[std::size_t(i)];
      values_[std::size_t(id)] = feed_stage_[std::size_t(i)];
      const std::size_t bytes = value_bytes(id, batch_size);
      if (bytes) KILN_CUDA(cudaMemcpyAsync(feed_stage_[std::size_t(i)], host[std::size_t(i)], bytes, cudaMemcpyHostToDevice, stream_.get()));
    }
    resolve_aliases();
    execute(batch_size);
    std::size_t off = 0;
    for (std::size_t i = 0; i < NO; ++i) {
      const int id = P::outputs[i].node;
      const std::size_t bytes = value_bytes(id, batch_size);
      std::byte* dst = host_out_.data() + off;
      if (bytes) KILN_CUDA(cudaMemcpyAsync(dst, values_[std::size_t(id)], bytes, cudaMemcpyDeviceToHost, stream_.get()));
      outputs_.values[i] = value_ref{dst, P::nodes[std::size_t(id)].type, dims::of(P::nodes[std::size_t(id)].out, batch_size)};
      off += std::size_t(align_bytes(std::int64_t(bytes)));
    }
    finish_run(off);
    return outputs_;
  }

  // Device feeds in (pointers from cudaMalloc or cudaMallocManaged, read in place), device
  // outputs out (they point into the executor's memory and stay valid until the next run). The
  // call returns once the run has finished.
  const run_outputs<NO>& run_device(std::initializer_list<feed> feeds = {}) {
    return run_device(std::span<const feed>(feeds.begin(), feeds.size()));
  }
  const run_outputs<NO>& run_device(std::span<const feed> feeds) {
    cuda_detail::device_scope on(options_.device);
    std::array<const void*, std::size_t(P::plan.n_feeds) + 1> device{};
    const std::int64_t batch_size = bind_feeds(feeds, device);
    for (int i = 0; i < P::plan.n_feeds; ++i) {
      const void* p = device[std::size_t(i)];
      if (!p) continue;
      cudaPointerAttributes attr{};
      KILN_CUDA(cudaPointerGetAttributes(&attr, p));
      if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged)
        throw error("kiln: run_device: feed '" + std::string(P::nodes[std::size_t(P::plan.feeds[std::size_t(i)])].name.view()) +
                    "' is not device memory; pass host data to run()");
    }
    prepare(batch_size);
    for (int i = 0; i < P::plan.n_feeds; ++i) values_[std::size_t(P::plan.feeds[std::size_t(i)])] = const_cast<void*>(device[std::size_t(i)]);
    resolve_aliases();
    execute(batch_size);
    for (std::size_t i = 0; i < NO; ++i) {
      const int id = P::outputs[i].node;
      outputs_.values[i] = value_ref{values_[std::size_t(id)], P::nodes[std::size_t(id)].type, dims::of(P::nodes[std::size_t(id)].out, batch_size)};
    }
    finish_run(0);
    return outputs_;
  }

  // The device copies of the variables are the live ones; these move them to and from the host
  // store (after training, before saving; after loading or editing on the host).
  void pull_variables() {
    cuda_detail::device_scope on(options_.device);
    for (int v = 0; v < P::plan.n_variables; ++v) copy_variable(v, cudaMemcpyDeviceToHost);
    KILN_CUDA(cudaStreamSynchronize(stream_.get()));
  }
  void push_variables() {
    cuda_detail::device_scope on(options_.device);
    for (int v = 0; v < P::plan.n_variables; ++v) copy_variable(v, cudaMemcpyHostToDevice);
    KILN_CUDA(cudaStreamSynchronize(stream_.get()));
  }

  variables& vars() { return *store_; }
  // The host copy of one variable, refreshed from the device first. Writes to it reach the
  // device with push_variables().
  template <scalar_type T> tensor_view<T> variable(std::string_view name) {
    cuda_detail::device_scope on(options_.device);
    for (int v = 0; v < P::plan.n_variables; ++v)
      if (P::nodes[std::size_t(P::plan.variables[std::size_t(v)])].name.view() == name) copy_variable(v, cudaMemcpyDeviceToHost);
    KILN_CUDA(cudaStreamSynchronize(stream_.get()));
    return store_->get<T>(name);
  }

  cudaStream_t stream() const { return stream_.get(); }
  std::int64_t arena_allocations() const { return arena_allocations_; }
  std::size_t arena_bytes() const { return arena_.size(); }
  std::int64_t graph_captures() const { return graph_captures_; }

  static constexpr std::uint64_t graph_seed = P::seed;  // graph::seed, as on the CPU, so initial values agree

 private:
  static constexpr bool has_matmul = [] {
    for (int g = 0; g < P::plan.n_groups; ++g)
      if (P::plan.groups[std::size_t(g)].kind == group_kind::matmul || P::plan.groups[std::size_t(g)].anchor >= 0) return true;
    return false;
  }();
  static constexpr bool has_gather = P::plan.count_groups(group_kind::gather) > 0;
  static constexpr std::size_t cublas_workspace_bytes = std::size_t(32) << 20;  // NVIDIA's advice for Hopper
  static constexpr std::int64_t device_align = 256;

  static constexpr std::int64_t device_aligned(std::int64_t n) { return (n + device_align - 1) / device_align * device_align; }
  static std::size_t value_bytes(int id, std::int64_t batch_size) {
    const node& n = P::nodes[std::size_t(id)];
    return std::size_t(n.out.elements(batch_size)) * size_of(n.type);
  }

  void bind_variables_and_constants() {
    const std::span<const double> pool(P::pool.data(), P::pool.size());
    std::int64_t bytes = device_aligned(std::int64_t(sizeof(cuda_detail::gather_fault)));
    for (int v = 0; v < P::plan.n_variables; ++v) bytes += device_aligned(std::int64_t(value_bytes(P::plan.variables[std::size_t(v)], 1)));
    for (int c = 0; c < P::plan.n_constants; ++c) bytes += device_aligned(std::int64_t(value_bytes(P::plan.constants[std::size_t(c)], 1)));
    persistent_.reset(std::size_t(bytes));
    std::byte* at = persistent_.data();
    fault_ = reinterpret_cast<cuda_detail::gather_fault*>(at);
    at += device_aligned(std::int64_t(sizeof(cuda_detail::gather_fault)));
    KILN_CUDA(cudaMemsetAsync(fault_, 0, sizeof(cuda_detail::gather_fault), stream_.get()));
    for (int v = 0; v < P::plan.n_variables; ++v) {
      const int id = P::plan.variables[std::size_t(v)];
      host_variables_[std::size_t(v)] = store_->bind(P::nodes[std::size_t(id)], pool, graph_seed);
      values_[std::size_t(id)] = at;
      at += device_aligned(std::int64_t(value_bytes(id, 1)));
      copy_variable(v, cudaMemcpyHostToDevice);
    }
    std::vector<std::byte> staging;
    for (int c = 0; c < P::plan.n_constants; ++c) {
      const int id = P::plan.constants[std::size_t(c)];
      const node& n = P::nodes[std::size_t(id)];
      staging.resize(value_bytes(id, 1));
      detail::with_ctype(n.type, [&](auto zero) {
        using T = decltype(zero);
        for (std::int64_t i = 0; i < n.out.static_elements(); ++i) reinterpret_cast<T*>(staging.data())[i] = static_cast<T>(pool[std::size_t(constant_attrs::of(n).pool_offset + i)]);
      });
      values_[std::size_t(id)] = at;
      at += device_aligned(std::int64_t(staging.size()));
      if (!staging.empty()) KILN_CUDA(cudaMemcpyAsync(values_[std::size_t(id)], staging.data(), staging.size(), cudaMemcpyHostToDevice, stream_.get()));
      KILN_CUDA(cudaStreamSynchronize(stream_.get()));  // staging is reused by the next constant
    }
    KILN_CUDA(cudaStreamSynchronize(stream_.get()));
  }

  void copy_variable(int v, cudaMemcpyKind direction) {
    const int id = P::plan.variables[std::size_t(v)];
    const std::size_t bytes = value_bytes(id, 1);
    if (!bytes) return;
    void* host = host_variables_[std::size_t(v)];
    void* device = values_[std::size_t(id)];
    if (direction == cudaMemcpyHostToDevice) KILN_CUDA(cudaMemcpyAsync(device, host, bytes, direction, stream_.get()));
    else KILN_CUDA(cudaMemcpyAsync(host, device, bytes, direction, stream_.get()));
  }

  // Checks every feed against its placeholder (as the CPU executor does) and returns the batch.
  std::int64_t bind_feeds(std::span<const feed> feeds, std::array<const void*, std::size_t(P::plan.n_feeds) + 1>& data) {
    std::array<bool, std::size_t(P::plan.n_feeds) + 1> bound{};
    std::int64_t batch_size = -1;
    const char* batch_from = nullptr;
    for (const feed& f : feeds) {
      int slot = -1;
      for (int i = 0; i < P::plan.n_feeds && slot < 0; ++i)
        if (P::nodes[std::size_t(P::plan.feeds[std::size_t(i)])].name.view() == f.name) slot = i;
      if (slot < 0) {
        if (declared_placeholder(f.name)) continue;  // declared, but no output needs it
        throw error("kiln: feed '" + std::string(f.name) + "' matches no placeholder; placeholders are: " + placeholder_list());
      }
      const node& n = P::nodes[std::size_t(P::plan.feeds[std::size_t(slot)])];
      const std::string expected = std::string(name_of(n.type)) + " " + to_string(n.out);
      const std::string got = std::string(name_of(f.value.type)) + " " + to_string(f.value.shape);
      if (f.value.type != n.type || f.value.shape.rank != n.out.rank)
        throw error("kiln: placeholder '" + std::string(f.name) + "' expects " + expected + ", got " + got);
      for (int d = 0; d < n.out.rank; ++d) {
        if (n.out.dim[d] == batch) {
          if (batch_size >= 0 && f.value.shape.d[d] != batch_size)
            throw error("kiln: placeholder '" + std::string(f.name) + "' has batch " + std::to_string(f.value.shape.d[d]) + " but '" +
                        std::string(batch_from) + "' has batch " + std::to_string(batch_size));
          batch_size = f.value.shape.d[d];
          batch_from = n.name.text;
        } else if (f.value.shape.d[d] != n.out.dim[d]) {
          throw error("kiln: placeholder '" + std::string(f.name) + "' expects " + expected + ", got " + got);
        }
      }
      if (!f.value.data && f.value.shape.elements() > 0) throw error("kiln: feed '" + std::string(f.name) + "' has no data");
      bound[std::size_t(slot)] = true;
      data[std::size_t(slot)] = f.value.data;
    }
    for (int i = 0; i < P::plan.n_feeds; ++i)
      if (!bound[std::size_t(i)]) {
        const node& n = P::nodes[std::size_t(P::plan.feeds[std::size_t(i)])];
        throw error("kiln: missing feed for placeholder '" + std::string(n.name.view()) + "' (" + std::string(name_of(n.type)) + " " +
                    to_string(n.out) + ")");
      }
    return batch_size < 0 ? 1 : batch_size;
  }

  static bool declared_placeholder(std::string_view name) {
    for (const node& n : P::model_nodes)  // placeholders lowering dropped as unused included
      if (n.kind == op::placeholder && n.name.view() == name) return true;
    return false;
  }
  static std::string placeholder_list() {
    std::string s;
    for (const node& n : P::model_nodes)
      if (n.kind == op::placeholder && n.name.view().substr(0, 1) != "~") s += (s.empty() ? "" : ", ") + std::string(n.name.view());
    return s.empty() ? "(none)" : s;
  }

  // Device memory for one batch size: feed staging, arena slots, reduction scratch, in one
  // allocation that only ever grows; and the pinned host buffer the outputs come back to.
  void prepare(std::int64_t batch_size) {
    if (batch_size == prepared_batch_) return;
    std::int64_t off = 0;
    std::array<std::int64_t, std::size_t(P::plan.n_feeds) + 1> feed_offset{};
    for (int i = 0; i < P::plan.n_feeds; ++i) {
      feed_offset[std::size_t(i)] = off;
      off += device_aligned(std::int64_t(value_bytes(P::plan.feeds[std::size_t(i)], batch_size)));
    }
    std::array<std::int64_t, N + 1> slot_offset{};
    for (int s = 0; s < P::plan.n_slots; ++s) {
      slot_offset[std::size_t(s)] = off;
      off += device_aligned(P::plan.slots[std::size_t(s)].fixed + P::plan.slots[std::size_t(s)].per_batch * batch_size);
    }
    const std::int64_t scratch_offset = off;
    off += device_aligned(std::int64_t(scratch_bytes(batch_size, std::make_index_sequence<std::size_t(P::plan.n_groups)>{})));
    if (std::size_t(off) > arena_.size()) {
      KILN_CUDA(cudaStreamSynchronize(stream_.get()));
      invalidate_graph();
      arena_.reset(std::size_t(off));
      ++arena_allocations_;
    }
    std::byte* base = arena_.data();
    for (int i = 0; i < P::plan.n_feeds; ++i) feed_stage_[std::size_t(i)] = base + feed_offset[std::size_t(i)];
    for (std::size_t i = 0; i < N; ++i)
      if (P::plan.storage[i] == storage_kind::arena) values_[i] = base + slot_offset[std::size_t(P::plan.storage_ref[i])];
    scratch_ = base + scratch_offset;

    std::size_t out_bytes = sizeof(cuda_detail::gather_fault);
    for (std::size_t i = 0; i < NO; ++i) out_bytes += std::size_t(align_bytes(std::int64_t(value_bytes(P::outputs[i].node, batch_size))));
    if (out_bytes > host_out_.size()) {
      KILN_CUDA(cudaStreamSynchronize(stream_.get()));
      host_out_.reset(out_bytes);
    }
    prepared_batch_ = batch_size;
  }

  template <std::size_t... G> static std::size_t scratch_bytes(std::int64_t batch_size, std::index_sequence<G...>) {
    std::size_t most = 0;
    ((most = std::max(most, group_scratch<int(G)>(batch_size))), ...);
    return most;
  }
  template <int G> static std::size_t group_scratch(std::int64_t batch_size) {
    if constexpr (P::plan.groups[std::size_t(G)].kind == group_kind::reduction) return cuda_detail::reduction_plan<P, G>::scratch_bytes(batch_size);
    else return 0;
  }

  void resolve_aliases() {
    for (std::size_t i = 0; i < N; ++i)
      if (P::plan.storage[i] == storage_kind::alias) values_[i] = values_[std::size_t(P::plan.storage_root(int(i)))];
  }

  // The kernels of one run, directly or through a captured CUDA graph.
  void execute(std::int64_t batch_size) {
    const cuda_detail::launch_context ctx{values_.data(), batch_size, stream_.get(), max_blocks_};
    if (!options_.use_graphs) {
      enqueue(ctx);
      return;
    }
    graph_key key{batch_size, {}};
    for (int i = 0; i < P::plan.n_feeds; ++i) key.feeds[std::size_t(i)] = values_[std::size_t(P::plan.feeds[std::size_t(i)])];
    if (!graph_exec_ || !(key == graph_key_)) {
      invalidate_graph();
      KILN_CUDA(cudaStreamBeginCapture(stream_.get(), cudaStreamCaptureModeThreadLocal));
      try {
        enqueue(ctx);
      } catch (...) {
        cudaGraph_t broken = nullptr;
        (void)cudaStreamEndCapture(stream_.get(), &broken);
        if (broken) (void)cudaGraphDestroy(broken);
        throw;
      }
      cudaGraph_t g = nullptr;
      KILN_CUDA(cudaStreamEndCapture(stream_.get(), &g));
      graph_.reset(g);
      cudaGraphExec_t exec = nullptr;
      KILN_CUDA(cudaGraphInstantiate(&exec, g, 0));
      graph_exec_.reset(exec);
      graph_key_ = key;
      ++graph_captures_;
    }
    KILN_CUDA(cudaGraphLaunch(graph_exec_.get(), stream_.get()));
  }

  void invalidate_graph() {
    graph_exec_.reset();
    graph_.reset();
  }

  void enqueue(const cuda_detail::launch_context& ctx) {
    if constexpr (has_gather) KILN_CUDA(cudaMemsetAsync(fault_, 0, sizeof(cuda_detail::gather_fault), ctx.stream));
    run_schedule(ctx, std::make_index_sequence<std::size_t(P::plan.n_groups)>{});
  }

  template <std::size_t... S> void run_schedule(const cuda_detail::launch_context& ctx, std::index_sequence<S...>) {
    (run_group<P::plan.schedule[S]>(ctx), ...);
  }

  template <int G> void run_group(const cuda_detail::launch_context& ctx) {
    constexpr group_info g = P::plan.groups[std::size_t(G)];
    if constexpr (g.kind == group_kind::elementwise) {
      if constexpr (g.anchor >= 0) cuda_detail::matmul_plan<P, G>::launch(ctx, cublas_.get());
      else cuda_detail::fused_plan<P, G, g.root, g.root>::launch(ctx, ctx.values[g.root]);
    } else if constexpr (g.kind == group_kind::reduction) {
      cuda_detail::reduction_plan<P, G>::launch(ctx, scratch_);
    } else if constexpr (g.kind == group_kind::matmul) {
      cuda_detail::matmul_plan<P, G>::launch(ctx, cublas_.get());
    } else if constexpr (g.kind == group_kind::layout) {
      cuda_detail::layout_plan<P, G>::launch(ctx);
    } else if constexpr (g.kind == group_kind::gather) {
      cuda_detail::gather_plan<P, G>::launch(ctx, fault_);
    } else if constexpr (g.kind == group_kind::window) {
      cuda_detail::window_plan<P, G>::launch(ctx);
    } else {
      static_assert(g.kind == group_kind::assign, "cuda: a group kind without a kernel");
      // assign: the value expression, broadcast to the variable's shape, written into it
      constexpr node a = P::nodes[std::size_t(g.root)];
      cuda_detail::fused_plan<P, G, a.in[1], g.root>::launch(ctx, ctx.values[a.in[0]]);
    }
  }

  // Waits for the run; reports an out-of-range gather index it met.
  void finish_run(std::size_t fault_offset) {
    if constexpr (has_gather) {
      auto* fault = reinterpret_cast<cuda_detail::gather_fault*>(host_out_.data() + fault_offset);
      KILN_CUDA(cudaMemcpyAsync(fault, fault_, sizeof(cuda_detail::gather_fault), cudaMemcpyDeviceToHost, stream_.get()));
      KILN_CUDA(cudaStreamSynchronize(stream_.get()));
      if (fault->flag) throw error(describe_fault(*fault, std::make_index_sequence<std::size_t(P::plan.n_groups)>{}));
    } else {
      (void)fault_offset;
      KILN_CUDA(cudaStreamSynchronize(stream_.get()));
    }
  }
  template <std::size_t... G> static std::string describe_fault(const cuda_detail::gather_fault& f, std::index_sequence<G...>) {
    std::string message = "kiln: gather: index " + std::to_string(f.index) + " is out of range";
    (
        [&] {
          if constexpr (P::plan.groups[G].kind == group_kind::gather)
            if (f.group == int(G)) message = cuda_detail::gather_plan<P, int(G)>::describe(f.index);
        }(),
        ...);
    return message;
  }

  struct graph_key {
    std::int64_t batch = -1;
    std::array<const void*, std::size_t(P::plan.n_feeds) + 1> feeds{};
    friend bool operator==(const graph_key&, const graph_key&) = default;
  };

  variables* store_ = nullptr;
  std::unique_ptr<variables> owned_store_;
  cuda_options options_;
  int max_blocks_ = 0;
  // Declared in the order they must be created; destroyed in reverse.
  cuda_detail::stream_handle stream_;
  cuda_detail::device_buffer workspace_;
  cuda_detail::cublas_handle cublas_;
  cuda_detail::device_buffer persistent_;  // gather fault record, variables, constants
  cuda_detail::device_buffer arena_;       // feed staging, slots, reduction scratch
  cuda_detail::pinned_buffer host_out_;    // outputs and the fault record, on the host
  cuda_detail::graph_handle graph_;
  cuda_detail::graph_exec_handle graph_exec_;
  graph_key graph_key_{};
  std::array<void*, N + 1> values_{};
  std::array<void*, std::size_t(P::plan.n_variables) + 1> host_variables_{};
  std::array<void*, std::size_t(P::plan.n_feeds) + 1> feed_stage_{};
  void* scratch_ = nullptr;
  cuda_detail::gather_fault* fault_ = nullptr;
  std::int64_t prepared_batch_ = -1;
  std::int64_t arena_allocations_ = 0;
  std::int64_t graph_captures_ = 0;
  run_outputs<NO> outputs_{};
};

// compile<cuda>(model): the executor for one GPU, with device copies of the variables of
// `host_store` (created and initialized there first when missing, exactly as on the CPU).
template <class Backend, model M>
  requires std::same_as<Backend, cuda>
auto compile(M, variables* host_store = nullptr, cuda_options options = {}) {
  static_assert(program<M>::ok);
  return cuda_executor<program<M>>(host_store, options);
}

}  // namespace kiln
