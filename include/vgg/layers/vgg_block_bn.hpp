#pragma once
#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "vgg/layers/batchnorm.hpp"
#include "vgg/layers/conv3x3.hpp"
#include "vgg/layers/layer_list.hpp"
#include "vgg/layers/maxpool.hpp"
#include "vgg/layers/relu.hpp"
#include "vgg/layers/sequential.hpp"
#include "vgg/layers/vgg_block.hpp"

namespace vgg {

template <std::size_t NumConvs, std::size_t In, std::size_t Out, class InputShape>
class vgg_block_bn_layer;

/// A VGG block with batch norm, as torchvision's vgg11_bn ... vgg19_bn build them: NumConvs
/// times [Conv3x3 (padding 1), BatchNorm2d, ReLU], then a 2x2 max-pool with stride 2.
/// shape<In, H, W> to shape<Out, H/2, W/2>; the rules of VGGBlock.
template <std::size_t NumConvs, std::size_t In, std::size_t Out>
struct VGGBlockBN {
    static constexpr std::size_t num_convs = NumConvs, in_channels = In, out_channels = Out;
    template <class S>
    using output_shape = typename VGGBlock<NumConvs, In, Out>::template output_shape<S>;
    template <class S>
    using layer = vgg_block_bn_layer<NumConvs, In, Out, S>;
};

namespace detail {

/// [Conv3x3, BatchNorm2d, ReLU] per convolution, then MaxPool2x2, as one Sequential: the layers
/// and their nn.Sequential names (conv j at 3j, its batch norm at 3j + 1).
template <std::size_t In, std::size_t Out, class Input, std::size_t... J>
auto conv_bn_relu_pool(std::index_sequence<J...>)
    -> sequential_of_lists<Input, layer_list<Conv3x3<J == 0 ? In : Out, Out>, BatchNorm2d<Out>, ReLU>...,
                           layer_list<MaxPool2x2>>;

} // namespace detail

template <std::size_t NumConvs, std::size_t In, std::size_t Out, class InputShape>
class vgg_block_bn_layer {
    using checked = detail::vgg_block_rules<NumConvs, In, Out, InputShape>;
    static constexpr std::size_t conv_count = checked::num_convs;
    using layers_type = decltype(detail::conv_bn_relu_pool<checked::in, checked::out, typename checked::input_shape>(
        std::make_index_sequence<conv_count>{}));

public:
    static constexpr std::string_view name = "VGGBlockBN";
    using input_shape = InputShape;
    using output_shape = typename VGGBlockBN<NumConvs, In, Out>::template output_shape<InputShape>;
    static constexpr std::size_t parameter_count = layers_type::parameter_count;

    void initialize(weight_init init, rng& random) { layers.initialize(init, random); }

    /// Training runs the layers one by one. Evaluation folds each batch norm into the
    /// convolution before it (weights and bias scaled by the running statistics) and runs the
    /// folded convolutions as a VGGBlock, ReLU and pooling fused into them: no pass of its own.
    void forward(const tensor<input_shape>& x, tensor<output_shape>& y, const run_context& context)
    {
        context_ = context;
        evaluated_folded_ = context.mode == mode::eval;
        if (!evaluated_folded_) {
            const auto& out = layers.forward(x, context);
            y.resize(x.batch());
            std::copy(out.values().begin(), out.values().end(), y.values().begin());
            return;
        }
        if (!folded_)
            folded_.emplace();
        fold_all(*folded_, std::make_index_sequence<conv_count>{});
        folded_->forward(x, y, context);
    }

    /// After an evaluation pass (gradients of a frozen network, as for a perceptual loss) the
    /// layers first rerun that pass unfolded, which backward needs and evaluation skipped.
    void backward(const tensor<input_shape>& x, const tensor<output_shape>&, const tensor<output_shape>& dy,
                  tensor<input_shape>* dx, parameter_gradients gradients = parameter_gradients::compute)
    {
        if (evaluated_folded_) {
            layers.forward(x, context_);
            evaluated_folded_ = false;
        }
        if (gradients == parameter_gradients::compute)
            layers.backward(dy, dx);
        else
            layers.backward_input(dy, dx);
    }

    /// Names as nn.Sequential gives them: convolution j at 3j, its batch norm at 3j + 1.
    template <class Visitor>
    void visit_parameters(const std::string& prefix, Visitor&& visit)
    {
        layers.visit_parameters([&](parameter_view p) {
            p.name = prefix + p.name;
            visit(p);
        });
    }

    /// The block as evaluation runs it: a VGGBlock whose convolutions hold the batch norms folded in.
    vgg_block_layer<NumConvs, In, Out, InputShape> folded() const
    {
        folded_block block;
        fold_all(block, std::make_index_sequence<conv_count>{});
        return block;
    }

    layers_type layers;

private:
    using folded_block = vgg_block_layer<NumConvs, In, Out, InputShape>;

    template <std::size_t... J>
    void fold_all(folded_block& target, std::index_sequence<J...>) const
    {
        (fold(folded_conv<J>(target), layers.template layer<3 * J>(), layers.template layer<3 * J + 1>()), ...);
    }
    template <std::size_t J>
    static auto& folded_conv(folded_block& target)
    {
        if constexpr (J == 0)
            return target.first;
        else
            return target.later[J - 1];
    }

    /// bn(conv(x)) = conv'(x) in evaluation: w' = w * s and b' = (b - mean) * s + beta per
    /// output channel, with s = gamma / sqrt(running_var + eps).
    template <class Folded, class Conv, class Norm>
    static void fold(Folded& out, const Conv& conv, const Norm& norm)
    {
        std::array<float, checked::out> mean{}, inv_std{};
        norm.normalisation_from_running_statistics(mean.data(), inv_std.data());
        const std::size_t per_channel = conv.weight.value.size() / checked::out;
        for (std::size_t o = 0; o < checked::out; ++o) {
            const float scale = norm.weight.value[o] * inv_std[o];
            for (std::size_t i = 0; i < per_channel; ++i)
                out.weight.value[o * per_channel + i] = conv.weight.value[o * per_channel + i] * scale;
            out.bias.value[o] = (conv.bias.value[o] - mean[o]) * scale + norm.bias.value[o];
        }
    }

    run_context context_;
    bool evaluated_folded_ = false;
    /// The convolutions with the batch norms folded in, made at the first evaluation.
    std::optional<folded_block> folded_;
};

} // namespace vgg
