#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstring>

#include "vgg/core/tensor.hpp"
#include "vgg/detail/parallel.hpp"
#include "vgg/kernels/conv/dims.hpp"
#include "vgg/kernels/gemm_microkernel.hpp"
#include "vgg/kernels/winograd.hpp"

namespace vgg::kernels {

/// Operations of one kernel's F(Tile x Tile, 3x3) transform (G g G^T: (Tile + 2) x 3 x 3, then
/// (Tile + 2)^2 x 3 multiply-adds).
template <std::size_t Tile>
inline constexpr std::size_t winograd_kernel_transform_operations = 2 * (Tile + 2) * 3 * (Tile + 5);

/// winograd_transform_kernels split over threads by panels of target channels: with a small batch it
/// would otherwise be a serial share of the pass (16,384 kernel pairs for 128 -> 128 channels).
template <std::size_t Tile>
void winograd_transform_kernels_in_parallel(const conv3x3_dims& d, const float* weight, bool adjoint, float* u)
{
    const std::size_t to = adjoint ? d.in_channels : d.out_channels, from = adjoint ? d.out_channels : d.in_channels;
    vgg::detail::parallel_ranges(winograd_panel_rows(to) / micro_rows,
                                 winograd_kernel_transform_operations<Tile> * from * micro_rows,
                                 [&](std::size_t, std::size_t, vgg::detail::range panels) {
                                     winograd_transform_kernels<Tile>(weight, d.out_channels, d.in_channels, adjoint,
                                                                      winograd_panel_targets(panels, to), u);
                                 });
}

/// Floats from which same_bytes and copy_in_parallel split over threads (as many operations as
/// vgg::detail::parallel_min_operations): below it waking the other thread costs more than it
/// saves, and every evaluation pass compares each kept layer's weights (the seed's 128 -> 128
/// layers: 147K floats each).
inline constexpr std::size_t parallel_copy_min_floats = 1 << 17;

/// Whether `count` floats at a and b are the same bytes, the comparison split over threads.
inline bool same_bytes(const float* a, const float* b, std::size_t count)
{
    std::atomic<bool> differ{false};
    vgg::detail::parallel_ranges(count, vgg::detail::parallel_min_operations / parallel_copy_min_floats,
                                 [&](std::size_t, std::size_t, vgg::detail::range part) {
                                     if (std::memcmp(a + part.begin, b + part.begin, part.size() * sizeof(float)) != 0)
                                         differ.store(true, std::memory_order_relaxed);
                                 });
    return !differ.load(std::memory_order_relaxed);
}

/// Copies `count` floats from `from` to `to`, split over threads (one thread streams about half
/// the memory bandwidth of two).
inline void copy_in_parallel(const float* from, std::size_t count, float* to)
{
    vgg::detail::parallel_ranges(count, vgg::detail::parallel_min_operations / parallel_copy_min_floats,
                                 [&](std::size_t, std::size_t, vgg::detail::range part) {
                                     std::copy(from + part.begin, from + part.end, to + part.begin);
                                 });
}

/// The transformed kernels of one convolution, kept between its forward passes (the layers keep
/// them in evaluation, when the weights rarely change) with a copy of the weights they are made
/// from, and made again only when the weights differ from it byte for byte, or a pass runs by
/// another tile. A small batch would otherwise transform every kernel for a few tiles, each
/// transform as many operations as the kernel's products with 4.5 tiles (F(4x4, 3x3)) or 5
/// (F(2x2, 3x3)): VGG-16's 28x28 and 14x14 layers have 49 tiles an image.
class winograd_kernel_cache {
public:
    /// Whether it has a copy of `weight` already; if not, it takes one, and makes the kernels of
    /// it when next asked. Called once a pass, before the pass is planned.
    bool keep_weights(const conv3x3_dims& d, const float* weight)
    {
        const std::size_t count = d.weight_size();
        if (weights_.size() == count && same_bytes(weights_.data(), weight, count))
            return true;
        tile_ = 0;
        weights_.resize(count);
        copy_in_parallel(weight, count, weights_.data());
        return false;
    }

    /// winograd_transform_kernels<Tile> of the kept weights (all output channels).
    template <std::size_t Tile>
    const float* kernels(const conv3x3_dims& d)
    {
        if (tile_ != Tile) {
            tile_ = 0; // none until they are made
            kernels_.resize(winograd_kernels_size<Tile>(d.in_channels, d.out_channels));
            winograd_transform_kernels_in_parallel<Tile>(d, weights_.data(), false, kernels_.data());
            tile_ = Tile;
        }
        return kernels_.data();
    }

private:
    aligned_vector<float> weights_, kernels_;
    std::size_t tile_ = 0; ///< the tile kernels_ is for; 0: none is made of weights_
};

} // namespace vgg::kernels
