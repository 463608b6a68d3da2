// examples/fashion_cnn: one variant of the conv trunk with a GAP or an FC head, with or without
// dropout (models/conv_heads.hpp). Compiled once per variant (examples/meson.build passes
// FASHION_HEAD and FASHION_DROPOUT), so that each translation unit stays well under a minute.
#include <models/conv_heads.hpp>
#include "fashion_cnn.hpp"

#ifndef FASHION_HEAD
#error "compile with -DFASHION_HEAD=gap|fc -DFASHION_DROPOUT=0|1"
#endif

namespace fashion_example {

template <models::head H, bool Dropout> int run_conv_head(const flags& f) {
  static constexpr model_info info{
      H == models::head::gap ? "gap" : "fc",
      H == models::head::gap ? (Dropout ? "conv trunk 32-32-64 3x3 same + BN, global average pooling, dropout 0.5, dense 10"
                                        : "conv trunk 32-32-64 3x3 same + BN, global average pooling, dense 10")
                             : (Dropout ? "conv trunk 32-32-64 3x3 same + BN, flatten, dense 100 relu, dropout 0.5, dense 10"
                                        : "conv trunk 32-32-64 3x3 same + BN, flatten, dense 100 relu, dense 10"),
      "trunk1/kernel", 3, 3, 32, 64, 5};
  return train_and_test<&models::conv_head<H, Dropout>>(f, info);
}

template int run_conv_head<models::head::FASHION_HEAD, bool(FASHION_DROPOUT)>(const flags&);

}  // namespace fashion_example
