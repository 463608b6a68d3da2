// CPU references for test_window.cu.
#include "reference_cpu.hpp"
#include "window_models.hpp"

KILN_CUDA_WINDOW_MODELS(KILN_REGISTER_REFERENCE)
