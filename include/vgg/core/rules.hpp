#pragma once
#include <cstddef>

#include "vgg/core/shape.hpp"

/// A rule stated once where code must go on building after it fails (so that its sentence is the
/// only error, not the first of a cascade): a static_assert with the sentence, which the compiler
/// prints with the rule and its numbers, and a constexpr bool `name` saying whether it holds.
#define VGG_RULE(name, sentence, ...)                                                                                  \
    static constexpr bool name = __VA_ARGS__;                                                                          \
    static_assert(__VA_ARGS__, sentence)

/// Every compile-time rule of the library as a constexpr bool, so tests can static_assert on a
/// rule without a failing build, and so a failing static_assert prints the numbers involved
/// ("'vgg::rules::in_channels_match_v<3, 1>' evaluates to false").
namespace vgg::rules {

/// A layer's declared input channels equal the channels it receives.
template <std::size_t Declared, std::size_t Received>
inline constexpr bool in_channels_match_v = Declared == Received;

/// A channel count is at least one.
template <std::size_t Channels>
inline constexpr bool channels_positive_v = Channels > 0;

/// A VGG block has at least one convolution.
template <std::size_t NumConvs>
inline constexpr bool block_has_convs_v = NumConvs > 0;

/// A 2x2, stride-2 max-pool covers its input exactly: height and width are even and not zero.
template <std::size_t Height, std::size_t Width>
inline constexpr bool poolable_v = Height > 0 && Height % 2 == 0 && Width > 0 && Width % 2 == 0;

/// Convolutions and pools take image-shaped input (channels, height, width).
template <class Shape>
inline constexpr bool image_input_v = is_image_shape_v<Shape>;

/// Linear layers take flat input: a Flatten must come first.
template <class Shape>
inline constexpr bool flat_input_v = is_flat_shape_v<Shape>;

/// A Linear layer's declared in_features equal the features it receives.
template <std::size_t Declared, std::size_t Received>
inline constexpr bool in_features_match_v = Declared == Received;

/// The VGG head's in_features, written out_channels*H*W as in the seed, equal the flattened
/// size the blocks actually produce.
template <std::size_t HeadInFeatures, std::size_t FlattenedSize>
inline constexpr bool head_matches_flatten_v = HeadInFeatures == FlattenedSize;

/// A dropout probability in percent lies in [0, 100).
template <std::size_t Percent>
inline constexpr bool dropout_percent_valid_v = Percent < 100;

/// Scaling a conv_arch down by Ratio leaves every block at least one channel.
template <std::size_t Channels, std::size_t Ratio>
inline constexpr bool ratio_keeps_channels_v = Ratio > 0 && Channels / Ratio > 0;

/// A network's input is an image, shape<Channels, Height, Width>, or a vector, shape<Features>.
template <class Shape>
inline constexpr bool network_input_v = is_image_shape_v<Shape> || is_flat_shape_v<Shape>;

/// A network needs at least one output class.
template <std::size_t Classes>
inline constexpr bool classes_positive_v = Classes > 0;

} // namespace vgg::rules
