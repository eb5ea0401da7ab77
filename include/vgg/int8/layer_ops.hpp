#pragma once
// A network's convolutions and fully connected layers as int8 quantisation takes them: a list of
// operations with their weights (batch norm folded), each with its ReLU and pool, and their fp32
// evaluation, which calibration observes.
#include <algorithm>
#include <cstddef>
#include <utility>
#include <cstdint>
#include <string>
#include <vector>

#include "vgg/core/tensor.hpp"
#include "vgg/int8/rules.hpp"
#include "vgg/kernels/conv3x3.hpp"
#include "vgg/kernels/elementwise.hpp"
#include "vgg/kernels/linear.hpp"

namespace vgg::int8 {

/// One convolution (3x3, padding 1, then ReLU, pooled 2x2 when `pool`) or fully connected layer
/// (ReLU when `relu`) of an fp32 network in evaluation.
struct layer_op {
    enum class kind { conv, linear };
    kind type = kind::conv;
    std::size_t in = 0, out = 0;       ///< channels, or features
    std::size_t height = 1, width = 1; ///< a convolution's input size
    bool relu = true, pool = false;
    /// A convolution's [out][in][3][3]; a fully connected layer's [in][out], as Linear stores it
    /// (PyTorch's weight transposed). Bias [out].
    aligned_vector<float> weight{}, bias{};
    std::string name{};      ///< "layer 2, convolution 1", "layer 8 (Linear)"
    std::string parameter{}; ///< its weight's name in the network's files ("features.3.weight")

    std::size_t out_height() const { return pool ? height / 2 : height; }
    std::size_t out_width() const { return pool ? width / 2 : width; }
    /// Values one output holds in fp32.
    std::size_t out_size() const { return out * out_height() * out_width(); }
    /// The weights as [out][in x taps], PyTorch's order.
    aligned_vector<float> weight_by_output() const
    {
        if (type == kind::conv)
            return weight;
        aligned_vector<float> by_output(weight.size());
        for (std::size_t i = 0; i < in; ++i)
            for (std::size_t o = 0; o < out; ++o)
                by_output[o * in + i] = weight[i * out + o];
        return by_output;
    }
    /// Multiplies and adds of one input, times two.
    std::size_t operations() const { return 2 * in * out * (type == kind::conv ? 9 * height * width : 1); }
};

namespace detail {

template <class Block>
struct block_shape;
template <std::size_t N, std::size_t In, std::size_t Out, class S>
struct block_shape<vgg_block_layer<N, In, Out, S>> {
    static constexpr std::size_t convolutions = N, in = In, out = Out;
    using input = S;
};
template <std::size_t N, std::size_t In, std::size_t Out, class S>
struct block_shape<vgg_block_bn_layer<N, In, Out, S>> : block_shape<vgg_block_layer<N, In, Out, S>> {};

template <class Layer>
void add_structure(std::vector<layer_op>& ops, std::size_t index)
{
    constexpr layer_role role = role_of<Layer>;
    const std::string at = "layer " + std::to_string(index);
    if constexpr (role == layer_role::block) {
        using block = block_shape<Layer>;
        for (std::size_t j = 0; j < block::convolutions; ++j)
            ops.push_back({.type = layer_op::kind::conv,
                           .in = j == 0 ? block::in : block::out,
                           .out = block::out,
                           .height = image_dims<typename block::input>::height,
                           .width = image_dims<typename block::input>::width,
                           .pool = j + 1 == block::convolutions,
                           .name = at + ", convolution " + std::to_string(j)});
    } else if constexpr (role == layer_role::linear) {
        ops.push_back({.type = layer_op::kind::linear,
                       .in = Layer::input_shape::size,
                       .out = Layer::output_shape::size,
                       .relu = false,
                       .name = at + " (Linear)"});
    } else if constexpr (role == layer_role::relu) {
        ops.back().relu = true; // after a block, where it is idempotent, as after a Linear
    }
}

template <class Values>
void copy_weights(layer_op& op, const Values& weight, const Values& bias)
{
    op.weight.assign(weight.begin(), weight.end());
    op.bias.assign(bias.begin(), bias.end());
}

template <std::size_t N, std::size_t In, std::size_t Out, class S>
void copy_block_weights(std::vector<layer_op>::iterator& op, const vgg_block_layer<N, In, Out, S>& block)
{
    copy_weights(*op++, block.first.weight.value, block.first.bias.value);
    for (const auto& conv : block.later)
        copy_weights(*op++, conv.weight.value, conv.bias.value);
}

} // namespace detail

/// The operations of Net in order, without weights (rules::int8_layers_supported_v<Net> must hold).
template <class Net>
std::vector<layer_op> layer_structure()
{
    std::vector<layer_op> ops;
    [&]<std::size_t... I>(std::index_sequence<I...>)
    {
        (detail::add_structure<detail::layer_type<Net, I>>(ops, I), ...);
    }
    (std::make_index_sequence<Net::layer_count>{});
    return ops;
}

/// The operations of `net` in order, with their weights and their weights' names.
template <class Net>
std::vector<layer_op> collect_layer_ops(const Net& net)
{
    std::vector<layer_op> ops = layer_structure<Net>();
    auto op = ops.begin();
    net.visit_layers([&]<class Layer>(std::size_t, const Layer& layer, const auto&) {
        constexpr detail::layer_role role = detail::role_of<Layer>;
        if constexpr (role == detail::layer_role::block) {
            if constexpr (requires { layer.folded(); })
                detail::copy_block_weights(op, layer.folded());
            else
                detail::copy_block_weights(op, layer);
        } else if constexpr (role == detail::layer_role::linear) {
            detail::copy_weights(*op++, layer.weight.value, layer.bias.value);
        }
    });
    // A convolution's or Linear's weight is the parameter with two or more dimensions (a batch
    // norm's has one). visit_parameters has no const form; this visit only reads names.
    auto named = ops.begin();
    const_cast<Net&>(net).visit_parameters([&](const parameter_view& p) {
        if (p.shape.size() >= 2 && named != ops.end())
            (named++)->parameter = p.name;
    });
    return ops;
}

/// y = op(x) in fp32 for `batch` inputs (planes [channels][height][width], or features), as the
/// fp32 network evaluates it. `argmax` is scratch for a pooled convolution.
inline void run_fp32(const layer_op& op, std::size_t batch, const float* x, aligned_vector<float>& y,
                     aligned_vector<std::uint8_t>& argmax)
{
    y.resize(batch * op.out_size());
    if (op.type == layer_op::kind::linear) {
        kernels::linear_forward(batch, op.in, op.out, x, op.weight.data(), op.bias.data(), y.data());
        if (op.relu)
            kernels::relu_inplace(y.data(), y.size());
        return;
    }
    const auto dims = kernels::with_fastest_products({op.in, op.out, op.height, op.width});
    argmax.resize(op.pool ? y.size() : 0);
    const auto output = op.pool ? kernels::conv_output::relu_pooled(y.data(), argmax.data())
                                : kernels::conv_output::stored_through_relu(y.data());
    kernels::conv3x3_forward(dims, batch, x, op.weight.data(), op.bias.data(), output);
}

} // namespace vgg::int8
