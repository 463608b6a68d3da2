// CPU references for test_layout.cu.
#include "reference_cpu.hpp"

KILN_CUDA_LAYOUT_MODELS(KILN_REGISTER_REFERENCE)
