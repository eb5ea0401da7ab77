#pragma once
#include <array>
#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>

#include "vgg/core/shape.hpp"
#include "vgg/layers/adaptive_avgpool.hpp"
#include "vgg/layers/dropout.hpp"
#include "vgg/layers/flatten.hpp"
#include "vgg/layers/layer_list.hpp"
#include "vgg/layers/linear.hpp"
#include "vgg/layers/maxpool.hpp"
#include "vgg/layers/relu.hpp"
#include "vgg/layers/sequential.hpp"
#include "vgg/layers/vgg_block.hpp"
#include "vgg/layers/vgg_block_bn.hpp"
#include "vgg/models/vgg.hpp"

namespace vgg {

/// Size torchvision's VGG pools the features to before its classifier, whatever the input size.
inline constexpr std::size_t torchvision_pooled_size = 7;

namespace detail {

template <class Input, class Arch, bool BatchNorm, std::size_t Classes, std::size_t Hidden,
          class Indices = std::make_index_sequence<Arch::size>>
struct torchvision_layers;

template <class Input, class... Blocks, bool BatchNorm, std::size_t Classes, std::size_t Hidden, std::size_t... I>
struct torchvision_layers<Input, conv_arch<Blocks...>, BatchNorm, Classes, Hidden, std::index_sequence<I...>> {
    template <std::size_t Index, class Block>
    using block_spec =
        vgg_block_spec<BatchNorm, Block::num_convs, block_in_channels<Input, Blocks...>(Index), Block::out_channels>;
    static constexpr std::size_t pooled = torchvision_pooled_size;
    static constexpr std::size_t features = conv_arch<Blocks...>::last_out_channels * pooled * pooled;
    static_assert(rules::classes_positive_v<Classes>, "VGG needs at least one output class.");

    using features_list = layer_list<block_spec<I, Blocks>..., AdaptiveAvgPool2d<pooled, pooled>, Flatten>;
    using type = sequential_of_lists<Input, features_list, vgg_classifier<features, Classes, Hidden>>;
    /// The first layer of the classifier: torchvision's classifier[0].
    static constexpr std::size_t classifier_begin = sizeof...(Blocks) + 2;

    /// Where block b starts in torchvision's flat `features` list: each block before it holds
    /// [conv, (batch norm,) ReLU] per convolution and a max-pool.
    static constexpr std::size_t feature_offset(std::size_t b)
    {
        constexpr std::array<std::size_t, sizeof...(Blocks)> convs{Blocks::num_convs...};
        std::size_t offset = 0;
        for (std::size_t k = 0; k < b; ++k)
            offset += convs[k] * (BatchNorm ? 3 : 2) + 1;
        return offset;
    }
};

} // namespace detail

/// torchvision.models.vgg11 ... vgg19_bn: the VGG blocks of `Arch` (with batch norm after every
/// convolution for batch_norm<Arch>), AdaptiveAvgPool2d((7, 7)), Flatten and
/// vgg_classifier<512*7*7, Classes, Hidden>. Its parameters carry torchvision's state_dict names
/// ("features.0.weight", "features.1.running_mean", "classifier.6.bias"), so torchvision's weights
/// load as they are (tools/torchvision_to_safetensors.py). Any input whose height and width the five
/// pools divide works, as in torchvision.
template <class Input, class Arch, std::size_t Classes = 1000, std::size_t Hidden = vgg_hidden_features>
class TorchvisionVGG : public detail::torchvision_layers<Input, typename detail::arch_blocks<Arch>::type,
                                                         detail::arch_blocks<Arch>::batch_norm, Classes, Hidden>::type {
    using layers = detail::torchvision_layers<Input, typename detail::arch_blocks<Arch>::type,
                                              detail::arch_blocks<Arch>::batch_norm, Classes, Hidden>;
    using base = typename layers::type;

public:
    using arch = Arch;
    static constexpr bool batch_norm = detail::arch_blocks<Arch>::batch_norm;
    static constexpr std::size_t classes = Classes;

    template <class Visitor>
    void visit_parameters(Visitor&& visit)
    {
        base::visit_parameters([&](parameter_view p) {
            p.name = torchvision_name(p);
            visit(p);
        });
    }

    /// torchvision's name for a parameter: a block's layer at path {block, layer in the block} is
    /// "features.N.weight", N counted in torchvision's flat list; the classifier's "classifier.N.weight".
    static std::string torchvision_name(const parameter_view& p)
    {
        const std::string leaf = p.name.substr(p.name.rfind('.'));
        if (p.layer < Arch::size)
            return "features." + std::to_string(layers::feature_offset(p.layer) + p.path.at(1)) + leaf;
        return "classifier." + std::to_string(p.layer - layers::classifier_begin) + leaf;
    }
};

namespace detail {

/// One block of torchvision's flat `features` list: [Conv2d, ReLU] per convolution, then MaxPool2d.
template <std::size_t In, std::size_t Out, std::size_t... J>
auto flat_block(std::index_sequence<J...>) ->
    typename concat_lists<layer_list<Conv3x3<J == 0 ? In : Out, Out>, ReLU>..., layer_list<MaxPool2x2>>::type;

template <class Input, class Arch, class Indices = std::make_index_sequence<Arch::size>>
struct flat_features;
template <class Input, class... Blocks, std::size_t... I>
struct flat_features<Input, conv_arch<Blocks...>, std::index_sequence<I...>> {
    using type =
        sequential_of_lists<Input, decltype(flat_block<block_in_channels<Input, Blocks...>(I), Blocks::out_channels>(
                                       std::make_index_sequence<Blocks::num_convs>{}))...>;
};

} // namespace detail

namespace detail {
template <class... Blocks>
constexpr std::array<std::size_t, sizeof...(Blocks)> conv_counts(conv_arch<Blocks...>*)
{
    return {Blocks::num_convs...};
}
} // namespace detail

/// The index in torchvision's `features` (without batch norm) of the ReLU after convolution
/// `conv` of block `block`, both counted from 1 as torchvision's names (relu3_3) count them.
template <class Arch>
constexpr std::size_t torchvision_relu(std::size_t block, std::size_t conv)
{
    const auto convs = detail::conv_counts(static_cast<Arch*>(nullptr));
    std::size_t offset = 0;
    for (std::size_t b = 0; b + 1 < block; ++b)
        offset += 2 * convs[b] + 1;
    return offset + 2 * (conv - 1) + 1;
}

/// torchvision's `features` of a VGG without batch norm (vgg16().features) as a flat network,
/// one layer per module: Conv3x3, ReLU, ..., MaxPool2x2, so that layer N is torchvision's
/// features[N] and `output<N>()` its activation. Parameters are named "features.N.weight", so a
/// torchvision file loads into it (io::load_weights with strict = false skips the classifier).
/// What a perceptual or style loss reads: forward_to<vgg16_taps::relu4_3>(x), then
/// backward_from_taps(&dx, tap<...>(g), ...) for the input's gradient.
template <class Input, class Arch>
class TorchvisionFeatures : public detail::flat_features<Input, Arch>::type {
    using base = typename detail::flat_features<Input, Arch>::type;

public:
    using arch = Arch;

    template <class Visitor>
    void visit_parameters(Visitor&& visit)
    {
        base::visit_parameters([&](parameter_view p) {
            p.name = "features." + p.name;
            visit(p);
        });
    }
};

template <class Input = shape<3, 224, 224>>
using vgg16_features = TorchvisionFeatures<Input, vgg16_arch>;
template <class Input = shape<3, 224, 224>>
using vgg19_features = TorchvisionFeatures<Input, vgg19_arch>;

/// torchvision's feature taps of VGG-16 (LPIPS, perceptual losses): the ReLU outputs at the end
/// of each block, as indices of vgg16_features.
namespace vgg16_taps {
inline constexpr std::size_t relu1_2 = torchvision_relu<vgg16_arch>(1, 2), relu2_2 = torchvision_relu<vgg16_arch>(2, 2),
                             relu3_3 = torchvision_relu<vgg16_arch>(3, 3), relu4_3 = torchvision_relu<vgg16_arch>(4, 3),
                             relu5_3 = torchvision_relu<vgg16_arch>(5, 3);
}
/// The same for VGG-19 (style transfer reads relu1_1 ... relu5_1 too: torchvision_relu<vgg19_arch>(b, 1)).
namespace vgg19_taps {
inline constexpr std::size_t relu1_2 = torchvision_relu<vgg19_arch>(1, 2), relu2_2 = torchvision_relu<vgg19_arch>(2, 2),
                             relu3_4 = torchvision_relu<vgg19_arch>(3, 4), relu4_4 = torchvision_relu<vgg19_arch>(4, 4),
                             relu5_4 = torchvision_relu<vgg19_arch>(5, 4);
}

template <class Input = shape<3, 224, 224>, std::size_t Classes = 1000>
using vgg11 = TorchvisionVGG<Input, vgg11_arch, Classes>;
template <class Input = shape<3, 224, 224>, std::size_t Classes = 1000>
using vgg13 = TorchvisionVGG<Input, vgg13_arch, Classes>;
template <class Input = shape<3, 224, 224>, std::size_t Classes = 1000>
using vgg16 = TorchvisionVGG<Input, vgg16_arch, Classes>;
template <class Input = shape<3, 224, 224>, std::size_t Classes = 1000>
using vgg19 = TorchvisionVGG<Input, vgg19_arch, Classes>;
template <class Input = shape<3, 224, 224>, std::size_t Classes = 1000>
using vgg11_bn = TorchvisionVGG<Input, batch_norm<vgg11_arch>, Classes>;
template <class Input = shape<3, 224, 224>, std::size_t Classes = 1000>
using vgg13_bn = TorchvisionVGG<Input, batch_norm<vgg13_arch>, Classes>;
template <class Input = shape<3, 224, 224>, std::size_t Classes = 1000>
using vgg16_bn = TorchvisionVGG<Input, batch_norm<vgg16_arch>, Classes>;
template <class Input = shape<3, 224, 224>, std::size_t Classes = 1000>
using vgg19_bn = TorchvisionVGG<Input, batch_norm<vgg19_arch>, Classes>;

} // namespace vgg
