// Graph templates of the seeds' image classifiers (Fashion-MNIST sized: images [batch,28,28,1],
// 10 classes): each network plus its Adam train step and its inference graph.
#pragma once
#include "classifier.hpp"
#include "conv_heads.hpp"
#include "mlp.hpp"
#include "mnist_cnn.hpp"
#include "resnet.hpp"
