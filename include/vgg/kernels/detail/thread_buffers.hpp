#pragma once
#include <cstdint>

#include "vgg/core/tensor.hpp"
#include "vgg/kernels/winograd.hpp"

namespace vgg::kernels {

/// Buffers of one thread that outlive a call, so that layers do not allocate and fault in their
/// workspaces on every batch; each grows to its largest request (over all layers).
struct thread_buffers {
    winograd_workspace winograd;
    aligned_vector<float> kernels, columns, image, accumulators, sums;
    aligned_vector<float>
        kept_gradients; ///< output gradients of a group of images, for one Winograd input-gradient pass
    aligned_vector<std::uint16_t> packed_weights, staged_image, staged_gradient; ///< the AMX convolution's
    aligned_vector<float> adjoint, output_gradients; ///< of an input gradient computed alone
};
inline thread_buffers& this_thread_buffers()
{
    thread_local thread_buffers buffers;
    return buffers;
}

} // namespace vgg::kernels
