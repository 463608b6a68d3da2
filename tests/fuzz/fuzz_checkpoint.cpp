// libFuzzer target: checkpoint decoding (io/checkpoint.hpp) from bytes, and restoring into a store
// of every dtype. Any input must decode or throw kiln::error; a failed restore must leave the
// store exactly as it was, and a successful one must copy each tensor's bytes.
#include <io/checkpoint.hpp>
#include <runtime/variables.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

namespace {

// The store a model with these variables would have. Built with variables::bind rather than a
// compiled graph: clang 14 (the libFuzzer compiler here) cannot run kiln's compile-time planner.
kiln::variables make_store() {
  kiln::variables store;
  auto add = [&](const char* name, kiln::dtype type, std::initializer_list<std::int64_t> dims, bool trainable) {
    kiln::node n;
    n.kind = kiln::op::variable;
    n.type = type;
    n.out.rank = int(dims.size());
    int i = 0;
    for (auto d : dims) n.out.dim[i++] = d;
    n.name = kiln::name_text(name);
    n.flags = trainable ? kiln::flag_trainable : 0u;
    store.bind(n, {}, 1);
  };
  add("w", kiln::dtype::f32, {2, 2}, true);
  add("m", kiln::dtype::f64, {2}, false);
  add("it", kiln::dtype::i64, {}, false);
  add("c", kiln::dtype::i32, {1}, false);
  add("b", kiln::dtype::boolean, {1}, false);
  return store;
}

std::vector<std::vector<std::byte>> snapshot(const kiln::variables& store) {
  std::vector<std::vector<std::byte>> all;
  for (std::size_t i = 0; i < store.size(); ++i) all.emplace_back(store[i].data.data(), store[i].data.data() + store[i].data.size());
  return all;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static kiln::variables store = make_store();
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    const auto contents = kiln::io::read_checkpoint_contents(bytes, "fuzz input");
    for (const auto& t : contents.tensors)
      if (t.offset > size || t.bytes > size - t.offset) std::abort();  // data outside the input
  } catch (const kiln::error&) {
  }
  const auto before = snapshot(store);
  try {
    kiln::io::restore_checkpoint(store, bytes, "fuzz input");
  } catch (const kiln::error&) {
    if (snapshot(store) != before) std::abort();  // a failed restore wrote into the store
  }
  return 0;
}
