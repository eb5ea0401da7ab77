#pragma once
#include <cstddef>
#include <string>
#include <string_view>

#include "vgg/core/parameter.hpp"
#include "vgg/core/rules.hpp"
#include "vgg/kernels/linear.hpp"

namespace vgg {

template <std::size_t In, std::size_t Out, class InputShape>
class linear_layer;

/// nn.Linear(In, Out): shape<In> to shape<Out>. Its weight has PyTorch's shape [Out, In] (in
/// files and parameter views) but is stored transposed, [In, Out]: one input's weights are
/// contiguous, so a small batch's forward pass reads only the rows of inputs that are not zero.
template <std::size_t In, std::size_t Out>
struct Linear {
    template <class S>
    using output_shape = shape<Out>;
    template <class S>
    using layer = linear_layer<In, Out, S>;
};

template <std::size_t In, std::size_t Out, class InputShape>
class linear_layer {
    static_assert(rules::flat_input_v<InputShape>, "Linear needs a flat input: put Flatten before it.");
    static_assert(rules::channels_positive_v<Out>, "Linear<In, Out> needs at least one output feature.");
    static_assert(rules::in_features_match_v<In, InputShape::size>,
                  "Linear<In, Out>: In must equal the number of features its input carries.");

public:
    static constexpr std::string_view name = "Linear";
    using input_shape = InputShape;
    using output_shape = shape<Out>;
    static constexpr std::size_t parameter_count = Out * In + Out;
    static constexpr std::size_t forward_flops = 2 * Out * In; ///< per sample

    void initialize(weight_init init, rng& random)
    {
        detail::initialize_weight_and_bias(weight, bias, In, Out, init, random);
    }

    void forward(const tensor<input_shape>& x, tensor<output_shape>& y, const run_context& context)
    {
        precision_ = context.precision;
        y.resize(x.batch());
        kernels::linear_forward(x.batch(), In, Out, x.data(), weight.value.data(), bias.value.data(), y.data(),
                                precision_);
    }

    void backward(const tensor<input_shape>& x, const tensor<output_shape>&, const tensor<output_shape>& dy,
                  tensor<input_shape>* dx, parameter_gradients gradients = parameter_gradients::compute)
    {
        if (dx)
            dx->resize(x.batch());
        const bool own = gradients == parameter_gradients::compute;
        kernels::linear_backward(x.batch(), In, Out, x.data(), dy.data(), weight.value.data(),
                                 own ? weight.grad.data() : nullptr, own ? bias.grad.data() : nullptr,
                                 dx ? dx->data() : nullptr, precision_);
    }

    template <class Visitor>
    void visit_parameters(const std::string& prefix, Visitor&& visit)
    {
        visit(weight.view(prefix + "weight"));
        visit(bias.view(prefix + "bias"));
    }

    parameter weight{{Out, In}, storage_order::transposed};
    parameter bias{Out};

private:
    vgg::precision precision_ = vgg::precision::fp32; // of the last forward pass, repeated by its backward pass
};

} // namespace vgg
