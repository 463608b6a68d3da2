// The seed's TensorFlow 1 tutorial: d = b + c, e = c + 2, a = d * e.
#include <cstdio>
#include <kiln.hpp>

using namespace kiln;

// The graph is declared once, as a constexpr function; the compiler checks shapes and plans it.
constexpr auto tutorial = [] {
  graph g;
  tensor b = g.variable("b", i32, {10}, init::arange(0));  // np.arange(0, 10)
  tensor c = g.variable("c", f32, {}, init::constant(1.0));
  tensor d = cast(b, f32) + c;
  tensor e = c + 2.0;
  tensor a = d * e;
  g.output("a", a);
  return g;
};

constexpr auto slice_of_b = [] {
  graph g;
  tensor b = g.variable("b", i32, {10}, init::arange(0));
  g.output("f", slice(b, 0, 2, 5));  // b[2:5]
  return g;
};

static void print(const char* name, tensor_view<const float> v) {
  std::printf("%s = [", name);
  for (std::int64_t i = 0; i < v.size(); ++i) std::printf(i ? ", %g" : "%g", double(v.flat()[std::size_t(i)]));
  std::printf("]\n");
}

int main(int argc, char** argv) {
  auto session = compile<cpu>(tutorial);
  print("a", session.run().get<float>("a"));

  session.variable<std::int32_t>("b")[1] = 10;  // b[1].assign(10)
  print("a", session.run().get<float>("a"));

  auto sliced = compile<cpu>(slice_of_b, &session.vars());  // shares the variable store
  auto f = sliced.run().get<std::int32_t>("f");
  std::printf("f = b[2:5] = [");
  for (std::int64_t i = 0; i < f.size(); ++i) std::printf(i ? ", %d" : "%d", f.flat()[std::size_t(i)]);
  std::printf("]\n\n%s", describe<decltype(session)::program_type>().c_str());

  if (argc > 1) {  // tf_tutorial graph.dot  ->  dot -Tpng graph.dot -o graph.png
    std::FILE* out = std::fopen(argv[1], "w");
    if (!out) { std::perror(argv[1]); return 1; }
    std::fputs(to_dot<decltype(session)::program_type>().c_str(), out);
    std::fclose(out);
    std::printf("wrote %s\n", argv[1]);
  }
}
