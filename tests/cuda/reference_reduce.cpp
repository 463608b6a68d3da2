// CPU references for test_reduce.cu.
#include "reference_cpu.hpp"

KILN_CUDA_REDUCE_MODELS(KILN_REGISTER_REFERENCE)
