#pragma once
#include <array>
#include <cstddef>

namespace vgg {

/// A per-sample tensor shape known at compile time: shape<C, H, W> for images,
/// shape<N> for flat feature vectors. The batch size is never part of a shape.
template <std::size_t... Dims>
struct shape {
    static_assert(sizeof...(Dims) >= 1, "A shape needs at least one dimension.");
    static constexpr std::size_t rank = sizeof...(Dims);
    static constexpr std::size_t size = (Dims * ...);
    static constexpr std::array<std::size_t, rank> dims{Dims...};
};

/// An image shape: channels, height and width.
template <class S>
inline constexpr bool is_image_shape_v = false;
template <std::size_t C, std::size_t H, std::size_t W>
inline constexpr bool is_image_shape_v<shape<C, H, W>> = true;

/// A flat shape: one dimension of features.
template <class S>
inline constexpr bool is_flat_shape_v = false;
template <std::size_t N>
inline constexpr bool is_flat_shape_v<shape<N>> = true;

/// Output size of a convolution or pooling window along one axis.
constexpr std::size_t window_output_size(std::size_t input, std::size_t kernel, std::size_t stride, std::size_t padding)
{
    return (input + 2 * padding - kernel) / stride + 1;
}

} // namespace vgg

namespace vgg {

/// Channels, height and width of an image shape; all zero for any other shape, so that a rule
/// can report a wrong shape without a cascade of unrelated errors.
template <class S>
struct image_dims {
    static constexpr std::size_t channels = 0, height = 0, width = 0;
};
template <std::size_t C, std::size_t H, std::size_t W>
struct image_dims<shape<C, H, W>> {
    static constexpr std::size_t channels = C, height = H, width = W;
};

} // namespace vgg
