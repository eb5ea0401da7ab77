#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "vgg/core/parameter.hpp"
#include "vgg/core/rules.hpp"
#include "vgg/kernels/conv3x3.hpp"

namespace vgg {

template <std::size_t In, std::size_t Out, class InputShape>
class conv3x3_layer;

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
    static constexpr std::size_t forward_flops = 2 * Out * In * 9 * image_dims<InputShape>::height * image_dims<InputShape>::width;

    void initialize(weight_init init, rng& random)
    {
        detail::initialize_weight_and_bias(weight, bias, In * 9, Out * 9, init, random);
    }

    /// Convolution; `fuse_relu` applies ReLU in the same pass (used by VGGBlock).
    void forward(const tensor<input_shape>& x, tensor<output_shape>& y, const run_context& context,
                 bool fuse_relu = false)
    {
        precision_ = context.precision;
        y.resize(x.batch());
        kernels::conv3x3_forward(dims(), x.batch(), x.data(), weight.value.data(), bias.value.data(), y.data(), fuse_relu,
                                 kept_kernels(context));
    }

    /// Writes the weight and bias gradients (unless skipped), and the input gradient when dx is not null.
    void backward(const tensor<input_shape>& x, const tensor<output_shape>&, const tensor<output_shape>& dy,
                  tensor<input_shape>* dx, parameter_gradients gradients = parameter_gradients::compute)
    {
        if (dx)
            dx->resize(x.batch());
        kernels::conv3x3_backward(dims(), x.batch(), x.data(), dy.data(), weight.value.data(), weight_grad(gradients),
                                  bias_grad(gradients), dx ? dx->data() : nullptr);
    }

    /// Backward of relu(conv(x)) given its output: the ReLU mask is applied on the way in.
    void backward_through_relu(const tensor<input_shape>& x, const tensor<output_shape>& relu_output,
                               const tensor<output_shape>& dy, tensor<input_shape>* dx,
                               parameter_gradients gradients = parameter_gradients::compute)
    {
        if (dx)
            dx->resize(x.batch());
        kernels::conv3x3_backward(dims(), x.batch(), x.data(), dy.data(), weight.value.data(), weight_grad(gradients),
                                  bias_grad(gradients), dx ? dx->data() : nullptr, relu_output.data());
    }

    /// pooled = maxpool2x2(relu(conv(x))) with the pool's arg-max; the full-resolution
    /// convolution output is never stored.
    template <class PooledShape>
    void forward_relu_pool(const tensor<input_shape>& x, tensor<PooledShape>& pooled, std::vector<std::uint8_t>& argmax,
                           const run_context& context)
    {
        precision_ = context.precision;
        static_assert(PooledShape::size * 4 == output_shape::size, "forward_relu_pool writes a 2x2-pooled output.");
        pooled.resize(x.batch());
        argmax.resize(pooled.size());
        kernels::conv3x3_relu_pool_forward(dims(), x.batch(), x.data(), weight.value.data(), bias.value.data(),
                                           pooled.data(), argmax.data(), kept_kernels(context));
    }

    /// Backward of forward_relu_pool.
    template <class PooledShape>
    void backward_relu_pool(const tensor<input_shape>& x, const tensor<PooledShape>& pooled,
                            const std::vector<std::uint8_t>& argmax, const tensor<PooledShape>& dpooled,
                            tensor<input_shape>* dx, parameter_gradients gradients = parameter_gradients::compute)
    {
        if (dx)
            dx->resize(x.batch());
        kernels::conv3x3_relu_pool_backward(dims(), x.batch(), x.data(), dpooled.data(), pooled.data(), argmax.data(),
                                            weight.value.data(), weight_grad(gradients), bias_grad(gradients),
                                            dx ? dx->data() : nullptr);
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
    float* weight_grad(parameter_gradients g) { return g == parameter_gradients::compute ? weight.grad.data() : nullptr; }
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
    vgg::precision precision_ = vgg::precision::fp32;
    kernels::winograd_kernel_cache kept_kernels_;
};

} // namespace vgg
