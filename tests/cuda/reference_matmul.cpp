// CPU references for test_matmul.cu.
#include "reference_cpu.hpp"

KILN_CUDA_MATMUL_MODELS(KILN_REGISTER_REFERENCE)
