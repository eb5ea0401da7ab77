#pragma once
// A network as a list of inference operations (convolution, batch norm, ReLU, pools, Flatten,
// Linear, Dropout), read off its layer types: what ONNX export writes and ONNX import matches a
// file's nodes against. VGG blocks are expanded into their convolutions.
#include <cstddef>
#include <map>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "vgg/layers/adaptive_avgpool.hpp"
#include "vgg/layers/batchnorm.hpp"
#include "vgg/layers/conv3x3.hpp"
#include "vgg/layers/dropout.hpp"
#include "vgg/layers/flatten.hpp"
#include "vgg/layers/linear.hpp"
#include "vgg/layers/maxpool.hpp"
#include "vgg/layers/relu.hpp"
#include "vgg/layers/vgg_block.hpp"
#include "vgg/layers/vgg_block_bn.hpp"

namespace vgg::io {

enum class layer_op_kind { conv, batch_norm, relu, max_pool, adaptive_avg_pool, flatten, linear, dropout };

/// One operation of a network's inference graph.
struct layer_op {
    layer_op_kind kind = layer_op_kind::relu;
    /// The top-level layer it belongs to, and how an error names it: "layer 3 (VGGBlock<2, 64, 256>)
    /// convolution 1".
    std::size_t layer = 0;
    std::string where;
    /// Channels (or features, for Linear and Flatten's output) and the spatial size around it.
    std::size_t in_channels = 0, in_height = 1, in_width = 1;
    std::size_t out_channels = 0, out_height = 1, out_width = 1;
    /// How many of its layer's parameters, in visit_parameters order, it owns: a convolution and a
    /// Linear 2 (weight, bias), a batch norm 4 (weight, bias, running_mean, running_var).
    std::size_t parameter_count = 0;
    /// Batch norm's epsilon.
    float epsilon = 0;
    /// Those parameters, filled in by ops_with_parameters.
    std::vector<parameter_view> parameters;
};

namespace detail {

template <class S>
layer_op shaped_op(layer_op_kind kind, std::size_t layer, std::string where, std::size_t parameter_count = 0)
{
    layer_op op;
    op.kind = kind;
    op.layer = layer;
    op.where = std::move(where);
    if constexpr (is_image_shape_v<S>) {
        op.in_channels = image_dims<S>::channels;
        op.in_height = image_dims<S>::height;
        op.in_width = image_dims<S>::width;
    } else {
        op.in_channels = S::size;
    }
    op.out_channels = op.in_channels;
    op.out_height = op.in_height;
    op.out_width = op.in_width;
    op.parameter_count = parameter_count;
    return op;
}

inline std::string layer_text(std::size_t layer, const std::string& type)
{
    return "layer " + std::to_string(layer) + " (" + type + ")";
}

// One overload per layer type; a layer without one is a compile error in layer_ops.
template <std::size_t In, std::size_t Out, class S>
void append_ops(std::vector<layer_op>& ops, const conv3x3_layer<In, Out, S>*, std::size_t layer,
                const std::string& where)
{
    auto op = shaped_op<S>(layer_op_kind::conv, layer, where, 2);
    op.out_channels = Out;
    ops.push_back(op);
}
template <std::size_t C, class S>
void append_ops(std::vector<layer_op>& ops, const batchnorm2d_layer<C, S>*, std::size_t layer, const std::string& where)
{
    auto op = shaped_op<S>(layer_op_kind::batch_norm, layer, where, 4);
    op.epsilon = batchnorm2d_layer<C, S>::eps;
    ops.push_back(op);
}
template <class S>
void append_ops(std::vector<layer_op>& ops, const relu_layer<S>*, std::size_t layer, const std::string& where)
{
    ops.push_back(shaped_op<S>(layer_op_kind::relu, layer, where));
}
template <class S>
void append_ops(std::vector<layer_op>& ops, const maxpool2x2_layer<S>*, std::size_t layer, const std::string& where)
{
    auto op = shaped_op<S>(layer_op_kind::max_pool, layer, where);
    op.out_height /= 2;
    op.out_width /= 2;
    ops.push_back(op);
}
template <std::size_t H, std::size_t W, class S>
void append_ops(std::vector<layer_op>& ops, const adaptive_avgpool2d_layer<H, W, S>*, std::size_t layer,
                const std::string& where)
{
    auto op = shaped_op<S>(layer_op_kind::adaptive_avg_pool, layer, where);
    op.out_height = H;
    op.out_width = W;
    ops.push_back(op);
}
template <class S>
void append_ops(std::vector<layer_op>& ops, const flatten_layer<S>*, std::size_t layer, const std::string& where)
{
    auto op = shaped_op<S>(layer_op_kind::flatten, layer, where);
    op.out_channels = S::size;
    op.out_height = op.out_width = 1;
    ops.push_back(op);
}
template <std::size_t In, std::size_t Out, class S>
void append_ops(std::vector<layer_op>& ops, const linear_layer<In, Out, S>*, std::size_t layer,
                const std::string& where)
{
    auto op = shaped_op<S>(layer_op_kind::linear, layer, where, 2);
    op.out_channels = Out;
    ops.push_back(op);
}
template <std::size_t Percent, class S>
void append_ops(std::vector<layer_op>& ops, const dropout_layer<Percent, S>*, std::size_t layer,
                const std::string& where)
{
    ops.push_back(shaped_op<S>(layer_op_kind::dropout, layer, where));
}
template <std::size_t N, std::size_t In, std::size_t Out, class S>
void append_ops(std::vector<layer_op>& ops, const vgg_block_layer<N, In, Out, S>*, std::size_t layer,
                const std::string& where)
{
    using conv_shape = shape<Out, image_dims<S>::height, image_dims<S>::width>;
    for (std::size_t j = 0; j < N; ++j) {
        const std::string conv = where + " convolution " + std::to_string(j);
        if (j == 0)
            append_ops(ops, static_cast<const conv3x3_layer<In, Out, S>*>(nullptr), layer, conv);
        else
            append_ops(ops, static_cast<const conv3x3_layer<Out, Out, conv_shape>*>(nullptr), layer, conv);
        append_ops(ops, static_cast<const relu_layer<conv_shape>*>(nullptr), layer,
                   where + " ReLU " + std::to_string(j));
    }
    append_ops(ops, static_cast<const maxpool2x2_layer<conv_shape>*>(nullptr), layer, where + " max-pool");
}

/// The layers of a Sequential, in order, each as the type it is bound to.
template <class Net, class Visit>
void for_each_layer_type(Visit&& visit)
{
    // clang-format off
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        (visit(std::integral_constant<std::size_t, I>{},
               static_cast<const std::remove_cvref_t<decltype(std::declval<Net&>().template layer<I>())>*>(nullptr)),
         ...);
    }(std::make_index_sequence<Net::layer_count>{});
    // clang-format on
}

// A block with batch norm holds a Sequential of [Conv2d, BatchNorm2d, ReLU] per convolution and
// a max-pool.
template <std::size_t N, std::size_t In, std::size_t Out, class S>
void append_ops(std::vector<layer_op>& ops, const vgg_block_bn_layer<N, In, Out, S>*, std::size_t layer,
                const std::string& where)
{
    using inner = decltype(std::declval<vgg_block_bn_layer<N, In, Out, S>&>().layers);
    for_each_layer_type<inner>([&](auto index, const auto* type) {
        constexpr std::size_t i = decltype(index)::value;
        const char* const roles[] = {" convolution ", " batch norm ", " ReLU "};
        append_ops(ops, type, layer, i == 3 * N ? where + " max-pool" : where + roles[i % 3] + std::to_string(i / 3));
    });
}

template <std::size_t N, std::size_t In, std::size_t Out>
std::string block_type_text(const char* name)
{
    return std::string(name) + "<" + std::to_string(N) + ", " + std::to_string(In) + ", " + std::to_string(Out) + ">";
}

// How a layer's type reads in an error: "Conv3x3<3, 64>", "VGGBlock<2, 64, 128>", "ReLU".
template <std::size_t In, std::size_t Out, class S>
std::string describe(const conv3x3_layer<In, Out, S>*)
{
    return "Conv3x3<" + std::to_string(In) + ", " + std::to_string(Out) + ">";
}
template <std::size_t In, std::size_t Out, class S>
std::string describe(const linear_layer<In, Out, S>*)
{
    return "Linear<" + std::to_string(In) + ", " + std::to_string(Out) + ">";
}
template <std::size_t C, class S>
std::string describe(const batchnorm2d_layer<C, S>*)
{
    return "BatchNorm2d<" + std::to_string(C) + ">";
}
template <std::size_t H, std::size_t W, class S>
std::string describe(const adaptive_avgpool2d_layer<H, W, S>*)
{
    return "AdaptiveAvgPool2d<" + std::to_string(H) + ", " + std::to_string(W) + ">";
}
template <std::size_t N, std::size_t In, std::size_t Out, class S>
std::string describe(const vgg_block_layer<N, In, Out, S>*)
{
    return block_type_text<N, In, Out>("VGGBlock");
}
template <std::size_t N, std::size_t In, std::size_t Out, class S>
std::string describe(const vgg_block_bn_layer<N, In, Out, S>*)
{
    return block_type_text<N, In, Out>("VGGBlockBN");
}
template <class Layer>
std::string describe(const Layer*)
{
    return std::string(Layer::name);
}

} // namespace detail

/// The inference operations of `Net`, in order, each naming its top-level layer.
template <class Net>
std::vector<layer_op> layer_ops()
{
    std::vector<layer_op> ops;
    detail::for_each_layer_type<Net>([&](auto index, const auto* type) {
        detail::append_ops(ops, type, index.value, detail::layer_text(index.value, detail::describe(type)));
    });
    return ops;
}

/// layer_ops with each operation's parameters (their names as the network gives them: vgg's or
/// torchvision's), taken in visit_parameters order.
template <class Net>
std::vector<layer_op> ops_with_parameters(Net& net)
{
    auto ops = layer_ops<Net>();
    std::map<std::size_t, std::vector<parameter_view>> by_layer;
    net.visit_parameters([&](const parameter_view& p) { by_layer[p.layer].push_back(p); });
    std::map<std::size_t, std::size_t> taken;
    for (auto& op : ops) {
        auto& views = by_layer[op.layer];
        auto& next = taken[op.layer];
        if (next + op.parameter_count > views.size())
            throw std::logic_error(op.where + " has fewer parameters than its operations need");
        op.parameters.assign(views.begin() + std::ptrdiff_t(next),
                             views.begin() + std::ptrdiff_t(next + op.parameter_count));
        next += op.parameter_count;
    }
    for (const auto& [layer, views] : by_layer)
        if (taken[layer] != views.size())
            throw std::logic_error("layer " + std::to_string(layer) + " has parameters no operation of it owns");
    return ops;
}

} // namespace vgg::io
