#pragma once
#include <stdexcept>
#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace vgg {

/// Threads vgg's kernels split their work between: OpenMP's (OMP_NUM_THREADS, else one per core),
/// 1 in a program built without OpenMP.
inline int max_threads()
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/// Sets the threads vgg's kernels use from here on (OpenMP's omp_set_num_threads; without OpenMP
/// it changes nothing: max_threads() stays 1). Throws std::invalid_argument for fewer than 1.
inline void set_threads(int threads)
{
    if (threads < 1)
        throw std::invalid_argument("vgg::set_threads: " + std::to_string(threads) + " threads; at least 1 is needed");
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
}

} // namespace vgg
