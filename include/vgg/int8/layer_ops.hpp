#pragma once
// A network's convolutions and fully connected layers as int8 quantisation takes them: a list of
// operations with their weights (batch norm folded), each with its ReLU and pool, and their fp32
// evaluation, which calibration observes and the first convolution keeps.
#include <algorithm>
#include <cstddef>
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
    aligned_vector<float> weight, bias;
    std::string name; ///< "layer 2, convolution 1", "layer 8 (Linear)"

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

template <class Values>
aligned_vector<float> copy_of(const Values& values)
{
    return aligned_vector<float>(values.begin(), values.end());
}

template <std::size_t In, std::size_t Out, class S>
layer_op conv_op(const conv3x3_layer<In, Out, S>& conv, bool pool, std::string name)
{
    layer_op op{layer_op::kind::conv,
                In,
                Out,
                image_dims<S>::height,
                image_dims<S>::width,
                true,
                pool,
                copy_of(conv.weight.value),
                copy_of(conv.bias.value),
                std::move(name)};
    return op;
}

template <std::size_t N, std::size_t In, std::size_t Out, class S>
void add_block(std::vector<layer_op>& ops, const vgg_block_layer<N, In, Out, S>& block, std::size_t index)
{
    const std::string at = "layer " + std::to_string(index) + ", convolution ";
    ops.push_back(conv_op(block.first, N == 1, at + "0"));
    for (std::size_t j = 0; j < block.later.size(); ++j)
        ops.push_back(conv_op(block.later[j], j + 2 == N, at + std::to_string(j + 1)));
}

} // namespace detail

/// The operations of `net` in order (rules::int8_layers_supported_v<Net> must hold).
template <class Net>
std::vector<layer_op> collect_layer_ops(const Net& net)
{
    std::vector<layer_op> ops;
    net.visit_layers([&]<class Layer>(std::size_t index, const Layer& layer, const auto&) {
        constexpr detail::layer_role role = detail::role_of<Layer>;
        if constexpr (role == detail::layer_role::block) {
            if constexpr (requires { layer.folded(); })
                detail::add_block(ops, layer.folded(), index);
            else
                detail::add_block(ops, layer, index);
        } else if constexpr (role == detail::layer_role::linear) {
            using features = typename Layer::output_shape;
            ops.push_back({layer_op::kind::linear, Layer::input_shape::size, features::size, 1, 1, false, false,
                           detail::copy_of(layer.weight.value), detail::copy_of(layer.bias.value),
                           "layer " + std::to_string(index) + " (Linear)"});
        } else if constexpr (role == detail::layer_role::relu) {
            ops.back().relu = true; // after a block, where it is idempotent, as after a Linear
        }
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
