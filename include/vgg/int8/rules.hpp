#pragma once
// What int8 quantisation accepts, as constexpr bools (vgg::rules) the quantised network asserts
// with a sentence each.
#include <cstddef>
#include <type_traits>
#include <utility>

#include "vgg/layers/adaptive_avgpool.hpp"
#include "vgg/layers/dropout.hpp"
#include "vgg/layers/flatten.hpp"
#include "vgg/layers/linear.hpp"
#include "vgg/layers/relu.hpp"
#include "vgg/layers/vgg_block.hpp"
#include "vgg/layers/vgg_block_bn.hpp"

namespace vgg::int8::detail {

/// What a layer becomes in an int8 network.
enum class layer_role {
    unsupported,
    block,     ///< VGGBlock or VGGBlockBN (folded): its convolutions
    linear,    ///< a fully connected layer
    relu,      ///< fused into the fully connected layer before it
    passed_by, ///< Flatten (the first Linear reads channels-last), Dropout (evaluation), an
               ///< AdaptiveAvgPool2d that keeps the size
};

template <class Layer>
inline constexpr layer_role role_of = layer_role::unsupported;
template <std::size_t N, std::size_t In, std::size_t Out, class S>
inline constexpr layer_role role_of<vgg_block_layer<N, In, Out, S>> = layer_role::block;
template <std::size_t N, std::size_t In, std::size_t Out, class S>
inline constexpr layer_role role_of<vgg_block_bn_layer<N, In, Out, S>> = layer_role::block;
template <std::size_t In, std::size_t Out, class S>
inline constexpr layer_role role_of<linear_layer<In, Out, S>> = layer_role::linear;
template <class S>
inline constexpr layer_role role_of<relu_layer<S>> = layer_role::relu;
template <class S>
inline constexpr layer_role role_of<flatten_layer<S>> = layer_role::passed_by;
template <std::size_t P, class S>
inline constexpr layer_role role_of<dropout_layer<P, S>> = layer_role::passed_by;
template <std::size_t H, std::size_t W, class S>
inline constexpr layer_role role_of<adaptive_avgpool2d_layer<H, W, S>> =
    image_dims<S>::height == H&& image_dims<S>::width == W ? layer_role::passed_by : layer_role::unsupported;

template <class Net, std::size_t I>
using layer_type = std::remove_cvref_t<decltype(std::declval<const Net&>().template layer<I>())>;

template <class Net, std::size_t... I>
constexpr bool all_supported(std::index_sequence<I...>)
{
    return ((role_of<layer_type<Net, I>> != layer_role::unsupported) && ...);
}

/// Every Linear but the last is followed (past Dropouts) by a ReLU, whose floor at zero lets its
/// output be u8.
template <class Net, std::size_t... I>
constexpr bool hidden_linears_have_relu(std::index_sequence<I...>)
{
    constexpr layer_role roles[] = {role_of<layer_type<Net, I>>...};
    constexpr std::size_t count = sizeof...(I);
    for (std::size_t i = 0; i < count; ++i) {
        if (roles[i] != layer_role::linear)
            continue;
        std::size_t next = i + 1;
        while (next < count && roles[next] == layer_role::passed_by)
            ++next;
        const bool last_linear = [&] {
            for (std::size_t j = i + 1; j < count; ++j)
                if (roles[j] == layer_role::linear || roles[j] == layer_role::block)
                    return false;
            return true;
        }();
        if (!last_linear && (next == count || roles[next] != layer_role::relu))
            return false;
    }
    return true;
}

} // namespace vgg::int8::detail

namespace vgg::rules {

/// Every layer is one int8 quantisation knows: VGGBlock, VGGBlockBN, Linear, ReLU, Flatten,
/// Dropout, or an AdaptiveAvgPool2d that keeps the size.
template <class Net>
inline constexpr bool
    int8_layers_supported_v = int8::detail::all_supported<Net>(std::make_index_sequence<Net::layer_count>{});

/// The network starts with a VGG block (its first convolution reads the image by rows) and
/// ends with a Linear (the logits, dequantised to fp32).
template <class Net>
inline constexpr bool int8_block_first_linear_last_v =
    int8::detail::role_of<int8::detail::layer_type<Net, 0>> ==
    int8::detail::layer_role::block&& int8::detail::role_of<int8::detail::layer_type<Net, Net::layer_count - 1>> ==
    int8::detail::layer_role::linear;

/// Every Linear but the last is followed by a ReLU (an int8 activation is never negative).
template <class Net>
inline constexpr bool int8_hidden_linears_have_relu_v =
    int8::detail::hidden_linears_have_relu<Net>(std::make_index_sequence<Net::layer_count>{});

} // namespace vgg::rules
