#pragma once
// With the optional OpenBLAS path (CMake target vgg::openblas), Eigen hands its GEMMs to
// OpenBLAS's sgemm. vgg already runs one GEMM per thread, so OpenBLAS's own threads would
// only oversubscribe the cores: they are turned off once, at start-up.
#ifdef VGG_WITH_OPENBLAS
extern "C" void openblas_set_num_threads(int);

namespace vgg::detail {
inline const bool openblas_single_threaded = (openblas_set_num_threads(1), true);
} // namespace vgg::detail
#endif
