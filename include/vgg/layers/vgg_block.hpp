#pragma once
#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>

#include "vgg/core/rules.hpp"
#include "vgg/layers/conv3x3.hpp"

namespace vgg {

template <std::size_t NumConvs, std::size_t In, std::size_t Out, class InputShape>
class vgg_block_layer;

/// The seed's vgg_block(num_convs, in_channels, out_channels): NumConvs times
/// [Conv3x3 (padding 1), ReLU], then a 2x2 max-pool with stride 2.
/// shape<In, H, W> to shape<Out, H/2, W/2>.
template <std::size_t NumConvs, std::size_t In, std::size_t Out>
struct VGGBlock {
    static constexpr std::size_t num_convs = NumConvs, in_channels = In, out_channels = Out;
    template <class S>
    using output_shape = shape<Out, image_dims<S>::height / 2, image_dims<S>::width / 2>;
    template <class S>
    using layer = vgg_block_layer<NumConvs, In, Out, S>;
};

namespace detail {

/// The rules of a VGG block, with or without batch norm, each stated once with its sentence.
/// When one fails, `holds` is false and the block builds its layers on a placeholder shape, so
/// that the sentence is the only error, not the first of a cascade.
template <std::size_t NumConvs, std::size_t In, std::size_t Out, class InputShape>
struct vgg_block_rules {
    VGG_RULE(has_convs, "VGGBlock<NumConvs, In, Out> needs at least one convolution.",
             rules::block_has_convs_v<NumConvs>);
    VGG_RULE(takes_an_image,
             "VGGBlock needs an image input, shape<Channels, Height, Width>: it cannot follow Flatten or Linear.",
             rules::image_input_v<InputShape>);
    VGG_RULE(has_inputs, "VGGBlock<NumConvs, In, Out> needs at least one input channel.",
             rules::channels_positive_v<In>);
    VGG_RULE(has_outputs, "VGGBlock<NumConvs, In, Out> needs at least one output channel.",
             rules::channels_positive_v<Out>);
    VGG_RULE(channels_match,
             "VGGBlock<NumConvs, In, Out>: In must equal the channel count of its input (the previous block's Out).",
             rules::in_channels_match_v<In, image_dims<InputShape>::channels>);
    VGG_RULE(poolable, "VGGBlock ends in a 2x2 max-pool, which needs an even input height and width (below).",
             rules::poolable_v<image_dims<InputShape>::height, image_dims<InputShape>::width>);

    static constexpr bool holds =
        has_convs && takes_an_image && has_inputs && has_outputs && channels_match && poolable;
    static constexpr std::size_t num_convs = holds ? NumConvs : 1, in = holds ? In : 1, out = holds ? Out : 1;
    using input_shape = std::conditional_t<holds, InputShape, shape<1, 2, 2>>;
    using conv_shape = shape<out, image_dims<input_shape>::height, image_dims<input_shape>::width>;
};

} // namespace detail

template <std::size_t NumConvs, std::size_t In, std::size_t Out, class InputShape>
class vgg_block_layer {
    using checked = detail::vgg_block_rules<NumConvs, In, Out, InputShape>;
    static constexpr std::size_t conv_count = checked::num_convs;
    using conv_shape = typename checked::conv_shape;
    using first_conv = conv3x3_layer<checked::in, checked::out, typename checked::input_shape>;
    using later_conv = conv3x3_layer<checked::out, checked::out, conv_shape>;

public:
    static constexpr std::string_view name = "VGGBlock";
    using input_shape = InputShape;
    using output_shape = typename VGGBlock<NumConvs, In, Out>::template output_shape<InputShape>;
    static constexpr std::size_t parameter_count =
        first_conv::parameter_count + (conv_count - 1) * later_conv::parameter_count;
    static constexpr std::size_t forward_flops =
        first_conv::forward_flops + (conv_count - 1) * later_conv::forward_flops;

    void initialize(weight_init init, rng& random)
    {
        first.initialize(init, random);
        for (auto& conv : later)
            conv.initialize(init, random);
    }

    /// Convolutions with ReLU fused into their output pass. The post-ReLU activations of all
    /// but the last convolution are kept: each is the next convolution's input and its own
    /// ReLU mask. The last convolution is pooled image by image as it is computed, so its
    /// full-resolution output is never stored: the pooled values and a one-byte arg-max suffice.
    void forward(const tensor<input_shape>& x, tensor<output_shape>& y, const run_context& context)
    {
        if constexpr (conv_count == 1) {
            first.forward(x, y, context, conv_epilogue::relu_maxpool2x2);
        } else {
            first.forward(x, activations_[0], context, conv_epilogue::relu);
            for (std::size_t j = 1; j + 1 < conv_count; ++j)
                later[j - 1].forward(activations_[j - 1], activations_[j], context, conv_epilogue::relu);
            later.back().forward(activations_.back(), y, context, conv_epilogue::relu_maxpool2x2);
        }
    }

    void backward(const tensor<input_shape>& x, const tensor<output_shape>& y, const tensor<output_shape>& dy,
                  tensor<input_shape>* dx, parameter_gradients gradients = parameter_gradients::compute)
    {
        if constexpr (conv_count == 1) {
            first.backward(x, y, dy, dx, gradients, conv_epilogue::relu_maxpool2x2);
        } else {
            later.back().backward(activations_.back(), y, dy, &grad_, gradients, conv_epilogue::relu_maxpool2x2);
            for (std::size_t j = conv_count - 1; j-- > 1;) {
                later[j - 1].backward(activations_[j - 1], activations_[j], grad_, &spare_grad_, gradients,
                                      conv_epilogue::relu);
                std::swap(grad_, spare_grad_);
            }
            first.backward(x, activations_[0], grad_, dx, gradients, conv_epilogue::relu);
        }
    }

    /// Names as in the seed's nn.Sequential block: convolutions sit at 0, 2, 4, ...
    template <class Visitor>
    void visit_parameters(const std::string& prefix, Visitor&& visit)
    {
        const auto at = [&](std::size_t place) {
            return [&visit, place](parameter_view p) {
                p.path.insert(p.path.begin(), place);
                visit(p);
            };
        };
        first.visit_parameters(prefix + "0.", at(0));
        for (std::size_t j = 1; j < conv_count; ++j)
            later[j - 1].visit_parameters(prefix + std::to_string(2 * j) + ".", at(2 * j));
    }

    first_conv first;
    std::array<later_conv, conv_count - 1> later;

private:
    std::array<tensor<conv_shape>, conv_count - 1> activations_;
    tensor<conv_shape> grad_, spare_grad_;
};

} // namespace vgg
