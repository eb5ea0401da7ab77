#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "vgg/core/parameter.hpp"
#include "vgg/core/rules.hpp"
#include "vgg/kernels/conv3x3.hpp"
#include "vgg/layers/maxpool.hpp"

namespace vgg {

template <std::size_t In, std::size_t Out, class InputShape>
class conv3x3_layer;

/// What a Conv3x3 layer does with its results in the pass that computes them, for the layers that
/// run convolutions (VGGBlock): nothing more (a layer of a Sequential), ReLU, or ReLU and a 2x2
/// max-pool, whose output is the pooled tensor (the layer keeps the pool's arg-max for backward).
namespace conv_epilogue {
struct none_t {};
struct relu_t {};
struct relu_maxpool2x2_t {};
inline constexpr none_t none{};
inline constexpr relu_t relu{};
inline constexpr relu_maxpool2x2_t relu_maxpool2x2{};
} // namespace conv_epilogue

/// nn.Conv2d(In, Out, kernel_size=3, padding=1): a 3x3 convolution, stride 1, padding 1, with
/// bias. Input shape<In, H, W>, output shape<Out, H, W>. Evaluation keeps the transformed kernels
/// of a Winograd convolution between passes (about 5 times the weights' memory), made again when
/// the weights change.
template <std::size_t In, std::size_t Out>
struct Conv3x3 {
    template <class S>
    using output_shape = shape<Out, image_dims<S>::height, image_dims<S>::width>;
    template <class S>
    using layer = conv3x3_layer<In, Out, S>;
};

template <std::size_t In, std::size_t Out, class InputShape>
class conv3x3_layer {
    static_assert(rules::image_input_v<InputShape>,
                  "Conv3x3 needs an image input, shape<Channels, Height, Width>: it cannot follow Flatten or Linear.");
    static_assert(rules::channels_positive_v<In>, "Conv3x3<In, Out> needs at least one input channel.");
    static_assert(rules::channels_positive_v<Out>, "Conv3x3<In, Out> needs at least one output channel.");
    static_assert(rules::in_channels_match_v<In, image_dims<InputShape>::channels>,
                  "Conv3x3<In, Out>: In must equal the channel count of its input.");

public:
    static constexpr std::string_view name = "Conv2d";
    using input_shape = InputShape;
    using output_shape = typename Conv3x3<In, Out>::template output_shape<InputShape>;
    static constexpr std::size_t parameter_count = Out * In * 9 + Out;
    /// Multiply-adds times two, per sample; backward costs twice this (input and weight gradients).
    static constexpr std::size_t forward_flops =
        2 * Out * In * 9 * image_dims<InputShape>::height * image_dims<InputShape>::width;

    void initialize(weight_init init, rng& random)
    {
        detail::initialize_weight_and_bias(weight, bias, In * 9, Out * 9, init, random);
    }

    /// Shape of the output with an epilogue: the pooled shape for relu_maxpool2x2.
    template <class Epilogue>
    using output_with = std::conditional_t<std::is_same_v<Epilogue, conv_epilogue::relu_maxpool2x2_t>,
                                           typename MaxPool2x2::template output_shape<output_shape>, output_shape>;

    /// y = conv(x), then `Epilogue` (conv_epilogue) in the same pass.
    template <class Epilogue = conv_epilogue::none_t>
    void forward(const tensor<input_shape>& x, tensor<output_with<Epilogue>>& y, const run_context& context,
                 Epilogue = {})
    {
        check_epilogue<Epilogue>();
        precision_ = context.precision;
        y.resize(x.batch());
        kernels::conv3x3_forward(dims(), x.batch(), x.data(), weight.value.data(), bias.value.data(),
                                 output<Epilogue>(y), kept_kernels(context));
    }

    /// Writes the weight and bias gradients (unless skipped), and the input gradient when dx is
    /// not null, from dy, the gradient of y, what forward with the same epilogue wrote.
    template <class Epilogue = conv_epilogue::none_t>
    void backward(const tensor<input_shape>& x, const tensor<output_with<Epilogue>>& y,
                  const tensor<output_with<Epilogue>>& dy, tensor<input_shape>* dx,
                  parameter_gradients gradients = parameter_gradients::compute, Epilogue = {})
    {
        if (dx)
            dx->resize(x.batch());
        kernels::conv3x3_backward(dims(), x.batch(), x.data(), weight.value.data(), output_gradient<Epilogue>(y, dy),
                                  weight_grad(gradients), bias_grad(gradients), dx ? dx->data() : nullptr);
    }

    template <class Visitor>
    void visit_parameters(const std::string& prefix, Visitor&& visit)
    {
        visit(weight.view(prefix + "weight"));
        visit(bias.view(prefix + "bias"));
    }

    parameter weight{{Out, In, 3, 3}};
    parameter bias{Out};

private:
    float* weight_grad(parameter_gradients g)
    {
        return g == parameter_gradients::compute ? weight.grad.data() : nullptr;
    }
    float* bias_grad(parameter_gradients g) { return g == parameter_gradients::compute ? bias.grad.data() : nullptr; }

    // The sizes and the precision of the last forward pass, which its backward pass repeats.
    kernels::conv3x3_dims dims() const
    {
        return kernels::with_fastest_products(
            {In, Out, image_dims<InputShape>::height, image_dims<InputShape>::width, precision_});
    }
    // The transformed kernels evaluation keeps between passes (training transforms them in each
    // pass: every step changes the weights). Kept, not freed, when training resumes: made again in
    // place, an evaluation after each step costs no fresh memory.
    kernels::winograd_kernel_cache* kept_kernels(const run_context& context)
    {
        return context.mode == mode::eval ? &kept_kernels_ : nullptr;
    }
    template <class Epilogue>
    static constexpr void check_epilogue()
    {
        static_assert(
            !std::is_same_v<Epilogue, conv_epilogue::relu_maxpool2x2_t> ||
                rules::poolable_v<image_dims<InputShape>::height, image_dims<InputShape>::width>,
            "Conv3x3's relu_maxpool2x2 epilogue needs an even height and width, or its 2x2 windows would drop pixels.");
    }
    template <class Epilogue>
    kernels::conv_output output(tensor<output_with<Epilogue>>& y)
    {
        if constexpr (std::is_same_v<Epilogue, conv_epilogue::relu_maxpool2x2_t>) {
            argmax_.resize(y.size());
            return kernels::conv_output::relu_pooled(y.data(), argmax_.data());
        } else {
            return {.planes = y.data(), .relu = std::is_same_v<Epilogue, conv_epilogue::relu_t>};
        }
    }
    template <class Epilogue>
    kernels::conv_output_gradient output_gradient(const tensor<output_with<Epilogue>>& y,
                                                  const tensor<output_with<Epilogue>>& dy) const
    {
        if constexpr (std::is_same_v<Epilogue, conv_epilogue::relu_maxpool2x2_t>)
            return kernels::conv_output_gradient::of_relu_pooled(dy.data(), y.data(), argmax_.data());
        else if constexpr (std::is_same_v<Epilogue, conv_epilogue::relu_t>)
            return kernels::conv_output_gradient::of_relu(dy.data(), y.data());
        else
            return kernels::conv_output_gradient::of_stored(dy.data());
    }

    vgg::precision precision_ = vgg::precision::fp32;
    kernels::winograd_kernel_cache kept_kernels_;
    std::vector<std::uint8_t> argmax_; ///< of the relu_maxpool2x2 epilogue's last forward pass
};

} // namespace vgg
