// examples/fashion_cnn: the seed's ResNet with one number of residual blocks (models/resnet.hpp).
// Compiled once per depth (examples/meson.build passes FASHION_RESNET_BLOCKS), so that each
// translation unit stays under a minute.
#include <models/resnet.hpp>
#include "fashion_cnn.hpp"

#ifndef FASHION_RESNET_BLOCKS
#error "compile with -DFASHION_RESNET_BLOCKS=N"
#endif

namespace fashion_example {

template <int Blocks> int run_resnet(const flags& f) {
  static constexpr model_info info{
      "resnet", "conv 32, conv 64, maxpool 3, N x res_block(64, 3), conv 64, GAP, dense 256 relu, dropout 0.5, dense 10",
      "conv1/kernel", 3, 3, 32, 64, 10};
  std::printf("resnet: %d residual blocks\n", Blocks);
  return train_and_test<&models::resnet<Blocks>>(f, info);
}

template int run_resnet<FASHION_RESNET_BLOCKS>(const flags&);

}  // namespace fashion_example
