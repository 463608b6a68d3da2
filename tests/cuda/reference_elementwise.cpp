// CPU references for test_elementwise.cu.
#include "reference_cpu.hpp"

KILN_CUDA_ELEMENTWISE_MODELS(KILN_REGISTER_REFERENCE)
