// The CUDA executor. Same contract as the CPU one (runtime/binding.hpp: feed binding, outputs,
// the walk over the groups): everything about the graph was decided at compile time; at run time
// it binds feeds, owns a device arena per batch size (allocated once, reused), and launches one
// kernel (or cuBLAS call) per group of the plan, in schedule order, on its own stream. Host feeds
// are copied in, outputs are copied back into pinned buffers it owns.
//
// Variables: the host store stays the store users, checkpoints and fit's callbacks see; the
// device copies are a mirror (backends/cuda/variables.cuh) shared by every CUDA executor bound to
// the same store and GPU, with per-variable bookkeeping of which copy is current: vars() and
// variable(name) bring the host copy up to date and mark it edited; a run first pushes exactly
// the edited variables, then marks the ones its plan assigns as newer on the device.
//
// Kernels are never templated on the program (see expression.cuh for why); the *_plan structs
// below are host code that may mention P and hand kernels P-free types and argument structs.
#pragma once
#include <algorithm>
#include <array>
#include <concepts>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>
#include "../../graph/program.hpp"
#include "../../runtime/binding.hpp"
#include "../../runtime/variables.hpp"
#include "../../runtime/view.hpp"
#include "check.cuh"
#include "fused.cuh"
#include "layout.cuh"
#include "matmul.cuh"
#include "memory.cuh"
#include "../../runtime/outputs.hpp"
#include "reduce.cuh"
#include "variables.cuh"
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
    cudaEvent_t e = nullptr;
    KILN_CUDA(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    caller_done_.reset(e);
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
    name_outputs<P>(outputs_);
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
    const bound_feeds<P> bound = bind_feeds<P>(feeds);
    check_feed_indices<P>(bound);  // host feeds: a bad label fails before any kernel (or assign) runs
    const std::int64_t batch_size = bound.batch_size;
    prepare(batch_size);
    for (int i = 0; i < P::plan.n_feeds; ++i) {
      const int id = P::plan.feeds[std::size_t(i)];
      values_[std::size_t(id)] = feed_stage_[std::size_t(i)];
      const std::size_t bytes = value_bytes<P>(id, batch_size);
      if (bytes) KILN_CUDA(cudaMemcpyAsync(feed_stage_[std::size_t(i)], bound.data[std::size_t(i)], bytes, cudaMemcpyHostToDevice, stream_.get()));
    }
    resolve_aliases<P>(values_.data());
    sync_variables_for_run();
    execute(batch_size, host_rollback::count);
    std::size_t off = 0;
    set_outputs<P>(outputs_, batch_size, [&](std::size_t, int id) -> const void* {
      const std::size_t bytes = value_bytes<P>(id, batch_size);
      std::byte* dst = host_out_.data() + off;
      if (bytes) KILN_CUDA(cudaMemcpyAsync(dst, values_[std::size_t(id)], bytes, cudaMemcpyDeviceToHost, stream_.get()));
      off += std::size_t(align_bytes(std::int64_t(bytes)));
      return dst;
    });
    finish_run(off, host_rollback::count);
    return outputs_;
  }

  // Device feeds in (pointers from cudaMalloc or cudaMallocManaged, read in place), device
  // outputs out (they point into the executor's memory and stay valid until the next run). The
  // run waits for the work queued on `caller` (the stream that produced the feeds; default: the
  // legacy default stream) and the call returns once the run has finished. Feeding a previous
  // run's outputs back is allowed at the same batch size: feeds that lie in the executor's own
  // memory are copied to staging first, so the run cannot overwrite them while it reads them.
  const run_outputs<NO>& run_device(std::initializer_list<feed> feeds = {}, cudaStream_t caller = nullptr) {
    return run_device(std::span<const feed>(feeds.begin(), feeds.size()), caller);
  }
  const run_outputs<NO>& run_device(std::span<const feed> feeds, cudaStream_t caller = nullptr) {
    cuda_detail::device_scope on(options_.device);
    const bound_feeds<P> bound = bind_feeds<P>(feeds);
    const std::int64_t batch_size = bound.batch_size;
    std::array<bool, std::size_t(P::plan.n_feeds) + 1> own{};
    bool any_own = false;
    for (int i = 0; i < P::plan.n_feeds; ++i) {
      const void* p = bound.data[std::size_t(i)];
      if (!p) continue;
      const std::string_view name = P::nodes[std::size_t(P::plan.feeds[std::size_t(i)])].name.view();
      cudaPointerAttributes attr{};
      KILN_CUDA(cudaPointerGetAttributes(&attr, p));
      if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged)
        throw error("kiln: run_device: feed '" + std::string(name) + "' is not device memory; pass host data to run()");
      own[std::size_t(i)] = owns(p, value_bytes<P>(P::plan.feeds[std::size_t(i)], batch_size));
      any_own = any_own || own[std::size_t(i)];
    }
    if (any_own && batch_size != prepared_batch_)
      throw error("kiln: run_device: a feed is an output of this executor's previous run (batch " + std::to_string(prepared_batch_) +
                  ") but the run has batch " + std::to_string(batch_size) + "; copy it out first");
    prepare(batch_size);
    // Order the run after the caller's work on its feeds.
    KILN_CUDA(cudaEventRecord(caller_done_.get(), caller));
    KILN_CUDA(cudaStreamWaitEvent(stream_.get(), caller_done_.get(), 0));
    for (int i = 0; i < P::plan.n_feeds; ++i) {
      const int id = P::plan.feeds[std::size_t(i)];
      if (own[std::size_t(i)]) {
        const std::size_t bytes = value_bytes<P>(id, batch_size);
        KILN_CUDA(cudaMemcpyAsync(feed_stage_[std::size_t(i)], bound.data[std::size_t(i)], bytes, cudaMemcpyDeviceToDevice, stream_.get()));
        values_[std::size_t(id)] = feed_stage_[std::size_t(i)];
      } else {
        values_[std::size_t(id)] = const_cast<void*>(bound.data[std::size_t(i)]);
      }
    }
    resolve_aliases<P>(values_.data());
    sync_variables_for_run();
    execute(batch_size, device_rollback::count);  // fed indices were not seen on the host
    set_outputs<P>(outputs_, batch_size, [&](std::size_t, int id) -> const void* { return values_[std::size_t(id)]; });
    finish_run(0, device_rollback::count);
    return outputs_;
  }

  // Brings every stale host copy up to date (pull) or sends every host edit to the device
  // (push; a run also does this first). Only the variables whose other copy is newer move.
  void pull_variables() {
    cuda_detail::device_scope on(options_.device);
    mirror().pull();
  }
  void push_variables() {
    cuda_detail::device_scope on(options_.device);
    mirror().push();
  }

  // The host store, every mirrored variable brought up to date and marked edited (so the next
  // run or push_variables() sends them all: a checkpoint restored into it reaches the device).
  variables& vars() {
    cuda_detail::device_scope on(options_.device);
    mirror().host_written_all();
    return *store_;
  }
  // The host copy of one variable, refreshed from the device first and marked edited: writes to
  // it reach the device at the next run (or push_variables()), and no other variable moves. The
  // view is a snapshot: after a run, ask again.
  template <scalar_type T> tensor_view<T> variable(std::string_view name) {
    cuda_detail::device_scope on(options_.device);
    mirror().host_written(name);
    return store_->get<T>(name);
  }
  // For code that keeps a pointer into the host store (fit's learning-rate scheduler): the host
  // copy of `name` was edited through it.
  void mark_host_written(std::string_view name) {
    cuda_detail::device_scope on(options_.device);
    mirror().host_written(name);
  }
  // The bookkeeping, shared with every executor of the same store and GPU (tests inspect it).
  const cuda_detail::device_variables& device_variables() const { return *device_vars_; }

 private:
  // The shared mirror, copying on this executor's stream.
  cuda_detail::device_variables& mirror() {
    device_vars_->memory().stream = stream_.get();
    return *device_vars_;
  }

 public:

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
  // The variables a faulting run restores (runtime/binding.hpp): run() checks host-fed gather
  // indices before any kernel, so there only computed indices can fault mid-run; run_device()
  // reads its indices on the device, where a fed index can fault too. host_rollback is a prefix
  // of device_rollback, so one saved copy serves both (the first `count` variables of it).
  using host_rollback = rollback_set<P, true>;
  using device_rollback = rollback_set<P, false>;
  static constexpr std::array<std::int64_t, std::size_t(device_rollback::count) + 1> rollback_offsets = [] {
    std::array<std::int64_t, std::size_t(device_rollback::count) + 1> a{};
    for (int k = 0; k < device_rollback::count; ++k) {
      const node& n = P::nodes[std::size_t(device_rollback::variables[std::size_t(k)])];
      const std::int64_t bytes = n.out.static_elements() * std::int64_t(size_of(n.type));
      a[std::size_t(k) + 1] = a[std::size_t(k)] + (bytes + device_align - 1) / device_align * device_align;  // device_aligned, not callable here
    }
    return a;
  }();

  void bind_variables_and_constants() {
    const std::span<const double> pool(P::pool.data(), P::pool.size());
    std::int64_t bytes = device_aligned(std::int64_t(sizeof(cuda_detail::gather_fault)));
    for (int c = 0; c < P::plan.n_constants; ++c) bytes += device_aligned(std::int64_t(value_bytes<P>(P::plan.constants[std::size_t(c)], 1)));
    persistent_.reset(std::size_t(bytes));
    std::byte* at = persistent_.data();
    fault_ = reinterpret_cast<cuda_detail::gather_fault*>(at);
    at += device_aligned(std::int64_t(sizeof(cuda_detail::gather_fault)));
    KILN_CUDA(cudaMemsetAsync(fault_, 0, sizeof(cuda_detail::gather_fault), stream_.get()));
    if constexpr (device_rollback::count > 0) rollback_.reset(std::size_t(rollback_offsets[std::size_t(device_rollback::count)]));
    device_vars_ = cuda_detail::device_variables_for(*store_, options_.device);
    for (int v = 0; v < P::plan.n_variables; ++v) {
      const int id = P::plan.variables[std::size_t(v)];
      const node& n = P::nodes[std::size_t(id)];
      void* host = store_->bind(n, pool, graph_seed);
      mirror_of_[std::size_t(v)] = mirror().bind(n.name.view(), host, value_bytes<P>(id, 1));
      values_[std::size_t(id)] = mirror().device(mirror_of_[std::size_t(v)]);
    }
    std::vector<std::byte> staging;
    for (int c = 0; c < P::plan.n_constants; ++c) {
      const int id = P::plan.constants[std::size_t(c)];
      const node& n = P::nodes[std::size_t(id)];
      staging.resize(value_bytes<P>(id, 1));
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

  // Before a run: host edits go to the device, and the variables the plan assigns become newer
  // there (marked before the launch: a run that throws may have assigned some of them).
  void sync_variables_for_run() {
    mirror().push();
    for (int v = 0; v < P::plan.n_variables; ++v)
      if (assigned_[std::size_t(v)]) mirror().device_written(mirror_of_[std::size_t(v)]);
  }
  static constexpr std::array<bool, std::size_t(P::plan.n_variables) + 1> assigned_ = [] {
    std::array<bool, std::size_t(P::plan.n_variables) + 1> a{};
    for (int v = 0; v < P::plan.n_variables; ++v) a[std::size_t(v)] = assigns_variable<P>(P::plan.variables[std::size_t(v)]);
    return a;
  }();

  // Whether [p, p + bytes) overlaps memory a run of this executor writes (its arena or one of the
  // variables its plan assigns).
  bool owns(const void* p, std::size_t bytes) const {
    const auto* b = static_cast<const std::byte*>(p);
    auto overlaps = [&](const void* base, std::size_t size) {
      const auto* q = static_cast<const std::byte*>(base);
      return size && b < q + size && q < b + std::max<std::size_t>(bytes, 1);
    };
    if (overlaps(arena_.data(), arena_.size())) return true;
    for (int v = 0; v < P::plan.n_variables; ++v)
      if (assigned_[std::size_t(v)] && overlaps(values_[std::size_t(P::plan.variables[std::size_t(v)])], value_bytes<P>(P::plan.variables[std::size_t(v)], 1)))
        return true;
    return false;
  }

  // Device memory for one batch size: feed staging, arena slots, reduction scratch, in one
  // allocation that only ever grows; and the pinned host buffer the outputs come back to.
  void prepare(std::int64_t batch_size) {
    if (batch_size == prepared_batch_) return;
    // Until this returns nothing is known to match a batch size; buffers grow by allocate-then-
    // swap (memory.cuh), so an out-of-memory here leaves the old arena valid for a retry.
    prepared_batch_ = -1;
    std::int64_t off = 0;
    std::array<std::int64_t, std::size_t(P::plan.n_feeds) + 1> feed_offset{};
    for (int i = 0; i < P::plan.n_feeds; ++i) {
      feed_offset[std::size_t(i)] = off;
      off += device_aligned(std::int64_t(value_bytes<P>(P::plan.feeds[std::size_t(i)], batch_size)));
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
    for (std::size_t i = 0; i < NO; ++i) out_bytes += std::size_t(align_bytes(std::int64_t(value_bytes<P>(P::outputs[i].node, batch_size))));
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


  // The kernels of one run, directly or through a captured CUDA graph; first a copy of the first
  // `rollback_count` variables of device_rollback, which finish_run restores if a gather faults.
  void execute(std::int64_t batch_size, int rollback_count) {
    const cuda_detail::launch_context ctx{values_.data(), batch_size, stream_.get(), max_blocks_};
    if (!options_.use_graphs) {
      enqueue(ctx, rollback_count);
      return;
    }
    graph_key key{batch_size, rollback_count, {}};
    for (int i = 0; i < P::plan.n_feeds; ++i) key.feeds[std::size_t(i)] = values_[std::size_t(P::plan.feeds[std::size_t(i)])];
    if (!graph_exec_ || !(key == graph_key_)) {
      invalidate_graph();
      KILN_CUDA(cudaStreamBeginCapture(stream_.get(), cudaStreamCaptureModeThreadLocal));
      try {
        enqueue(ctx, rollback_count);
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

  void enqueue(const cuda_detail::launch_context& ctx, int rollback_count) {
    if constexpr (has_gather) KILN_CUDA(cudaMemsetAsync(fault_, 0, sizeof(cuda_detail::gather_fault), ctx.stream));
    copy_rollback(rollback_count, true, ctx.stream);
    kernels k{ctx, cublas_.get(), scratch_, fault_};
    run_schedule<P>(k);
  }

 public:
  // The CUDA kernel for each group kind (the walk over the plan is runtime/binding.hpp's).
  struct kernels {
    static constexpr std::string_view backend_name = "cuda";
    const cuda_detail::launch_context& ctx;
    cublasHandle_t cublas;
    void* scratch;
    cuda_detail::gather_fault* fault;

    template <int G> void run(group_tag<group_kind::elementwise>, group_index<G>) const {
      constexpr group_info g = P::plan.groups[std::size_t(G)];
      if constexpr (g.anchor >= 0) cuda_detail::matmul_plan<P, G>::launch(ctx, cublas);
      else cuda_detail::fused_plan<P, G, g.root, g.root>::launch(ctx, ctx.values[g.root]);
    }
    template <int G> void run(group_tag<group_kind::reduction>, group_index<G>) const { cuda_detail::reduction_plan<P, G>::launch(ctx, scratch); }
    template <int G> void run(group_tag<group_kind::matmul>, group_index<G>) const { cuda_detail::matmul_plan<P, G>::launch(ctx, cublas); }
    template <int G> void run(group_tag<group_kind::layout>, group_index<G>) const { cuda_detail::layout_plan<P, G>::launch(ctx); }
    template <int G> void run(group_tag<group_kind::gather>, group_index<G>) const { cuda_detail::gather_plan<P, G>::launch(ctx, fault); }
    template <int G> void run(group_tag<group_kind::window>, group_index<G>) const { cuda_detail::window_plan<P, G>::launch(ctx); }
    // The value expression, broadcast to the variable's shape, written into it; skipped on the
    // device once a gather of this run met a bad index (the CPU throws before it gets here).
    template <int G> void run(group_tag<group_kind::assign>, group_index<G>) const {
      constexpr int root = P::plan.groups[std::size_t(G)].root;
      constexpr node a = P::nodes[std::size_t(root)];
      cuda_detail::fused_plan<P, G, a.in[1], root>::launch(ctx, ctx.values[a.in[0]], has_gather ? &fault->flag : nullptr);
    }
  };

 private:
  // Saves (save = true) or restores the first `count` variables of device_rollback.
  void copy_rollback(int count, bool save, cudaStream_t stream) {
    if constexpr (device_rollback::count > 0) {
      for (int k = 0; k < count; ++k) {
        const int id = device_rollback::variables[std::size_t(k)];
        void* copy = rollback_.data() + rollback_offsets[std::size_t(k)];
        void* value = values_[std::size_t(id)];
        const std::size_t bytes = value_bytes<P>(id, 1);
        KILN_CUDA(cudaMemcpyAsync(save ? copy : value, save ? value : copy, bytes, cudaMemcpyDeviceToDevice, stream));
      }
    } else {
      (void)count, (void)save, (void)stream;
    }
  }

  // Waits for the run; reports an out-of-range gather index it met, after restoring the
  // variables assigned before the faulting gather (assigns after it were skipped on the device).
  void finish_run(std::size_t fault_offset, int rollback_count) {
    if constexpr (has_gather) {
      auto* fault = reinterpret_cast<cuda_detail::gather_fault*>(host_out_.data() + fault_offset);
      KILN_CUDA(cudaMemcpyAsync(fault, fault_, sizeof(cuda_detail::gather_fault), cudaMemcpyDeviceToHost, stream_.get()));
      KILN_CUDA(cudaStreamSynchronize(stream_.get()));
      if (fault->flag) {
        copy_rollback(rollback_count, false, stream_.get());
        KILN_CUDA(cudaStreamSynchronize(stream_.get()));
        throw error(describe_fault(*fault, std::make_index_sequence<std::size_t(P::plan.n_groups)>{}) + "; the run changed no variable");
      }
    } else {
      (void)fault_offset, (void)rollback_count;
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
    int rollback_count = 0;
    std::array<const void*, std::size_t(P::plan.n_feeds) + 1> feeds{};
    friend bool operator==(const graph_key&, const graph_key&) = default;
  };

  variables* store_ = nullptr;
  std::unique_ptr<variables> owned_store_;
  cuda_options options_;
  int max_blocks_ = 0;
  // Declared in the order they must be created; destroyed in reverse.
  cuda_detail::stream_handle stream_;
  cuda_detail::event_handle caller_done_;  // run_device: the caller's stream reached this point
  cuda_detail::device_buffer workspace_;
  cuda_detail::cublas_handle cublas_;
  std::shared_ptr<cuda_detail::device_variables> device_vars_;  // shared per (store, GPU)
  cuda_detail::device_buffer persistent_;  // gather fault record, constants
  cuda_detail::device_buffer rollback_;    // copies of device_rollback's variables during a run
  cuda_detail::device_buffer arena_;       // feed staging, slots, reduction scratch
  cuda_detail::pinned_buffer host_out_;    // outputs and the fault record, on the host
  cuda_detail::graph_handle graph_;
  cuda_detail::graph_exec_handle graph_exec_;
  graph_key graph_key_{};
  std::array<void*, N + 1> values_{};
  std::array<int, std::size_t(P::plan.n_variables) + 1> mirror_of_{};  // index in device_vars_
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
