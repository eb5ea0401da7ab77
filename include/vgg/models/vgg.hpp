#pragma once
#include <algorithm>
#include <array>
#include <cstddef>
#include <type_traits>
#include <utility>

#include "vgg/core/rules.hpp"
#include "vgg/core/shape.hpp"
#include "vgg/layers/dropout.hpp"
#include "vgg/layers/flatten.hpp"
#include "vgg/layers/layer_list.hpp"
#include "vgg/layers/linear.hpp"
#include "vgg/layers/relu.hpp"
#include "vgg/layers/sequential.hpp"
#include "vgg/layers/vgg_block.hpp"
#include "vgg/layers/vgg_block_bn.hpp"

namespace vgg {

/// One entry of a conv_arch: (num_convs, out_channels).
template <std::size_t NumConvs, std::size_t OutChannels>
struct block {
    static constexpr std::size_t num_convs = NumConvs, out_channels = OutChannels;
};

/// The seed's conv_arch as a type: conv_arch<block<1, 64>, block<1, 128>, ...>.
template <class... Blocks>
struct conv_arch {
    static constexpr std::size_t size = sizeof...(Blocks);
    static constexpr std::size_t last_out_channels = std::array<std::size_t, size>{Blocks::out_channels...}.back();
};

/// An architecture whose blocks put batch norm after every convolution (VGGBlockBN), as
/// torchvision's vgg11_bn ... vgg19_bn do: VGG<shape<1, 32, 32>, batch_norm<vgg11_arch>, 10>,
/// TorchvisionVGG<shape<3, 224, 224>, batch_norm<vgg16_arch>>.
template <class Arch>
struct batch_norm : Arch {};

/// The seed's small_conv_arch: every block's channels divided by Ratio.
template <class Arch, std::size_t Ratio>
struct scale_channels;
template <std::size_t Ratio, class... Blocks>
struct scale_channels<conv_arch<Blocks...>, Ratio> {
    static constexpr std::size_t fewest_channels = std::min({Blocks::out_channels...});
    VGG_RULE(rule_holds, "small_conv_arch: dividing the channels by Ratio must leave every block at least one channel.",
             rules::ratio_keeps_channels_v<fewest_channels, Ratio>);
    // On failure, keep one channel per block so that the sentence above is the only error.
    using type = conv_arch<block<Blocks::num_convs, rule_holds ? Blocks::out_channels / Ratio : 1>...>;
};
template <class Arch, std::size_t Ratio>
using small_conv_arch = typename scale_channels<Arch, Ratio>::type;

/// The VGG family (Simonyan & Zisserman), as torchvision's configurations A, B, D and E.
using vgg11_arch = conv_arch<block<1, 64>, block<1, 128>, block<2, 256>, block<2, 512>, block<2, 512>>;
using vgg13_arch = conv_arch<block<2, 64>, block<2, 128>, block<2, 256>, block<2, 512>, block<2, 512>>;
using vgg16_arch = conv_arch<block<2, 64>, block<2, 128>, block<3, 256>, block<3, 512>, block<3, 512>>;
using vgg19_arch = conv_arch<block<2, 64>, block<2, 128>, block<4, 256>, block<4, 512>, block<4, 512>>;
using config_A = vgg11_arch;
using config_B = vgg13_arch;
using config_D = vgg16_arch;
using config_E = vgg19_arch;

/// Width of the two hidden fully connected layers of the VGG head, as in the paper and torchvision.
inline constexpr std::size_t vgg_hidden_features = 4096;

/// The VGG classifier, as in the paper and torchvision, after the features are flattened:
/// Linear(InFeatures, Hidden), ReLU, Dropout(0.5), Linear(Hidden, Hidden), ReLU, Dropout(0.5),
/// Linear(Hidden, Classes).
template <std::size_t InFeatures, std::size_t Classes, std::size_t Hidden = vgg_hidden_features>
using vgg_classifier = layer_list<Linear<InFeatures, Hidden>, ReLU, Dropout<50>, Linear<Hidden, Hidden>, ReLU,
                                  Dropout<50>, Linear<Hidden, Classes>>;

namespace detail {

/// An architecture's blocks and whether they carry batch norm (batch_norm<Arch>).
template <class Arch>
struct arch_blocks {
    using type = Arch;
    static constexpr bool batch_norm = false;
};
template <class Arch>
struct arch_blocks<vgg::batch_norm<Arch>> {
    using type = Arch;
    static constexpr bool batch_norm = true;
};

/// A block of a VGG: VGGBlockBN with batch norm, VGGBlock without.
template <bool BatchNorm, std::size_t NumConvs, std::size_t In, std::size_t Out>
using vgg_block_spec = std::conditional_t<BatchNorm, VGGBlockBN<NumConvs, In, Out>, VGGBlock<NumConvs, In, Out>>;

/// Block i's In: the previous block's Out, or the input's channels for the first block.
template <class Input, class... Blocks>
constexpr std::size_t block_in_channels(std::size_t i)
{
    constexpr std::array<std::size_t, sizeof...(Blocks)> outs{Blocks::out_channels...};
    return i == 0 ? image_dims<Input>::channels : outs[i - 1];
}

template <class Input, class Arch, bool BatchNorm, std::size_t Classes, std::size_t HeadHeight, std::size_t HeadWidth,
          std::size_t Hidden, class Indices = std::make_index_sequence<Arch::size>>
struct vgg_layers;

template <class Input, class... Blocks, bool BatchNorm, std::size_t Classes, std::size_t HeadHeight,
          std::size_t HeadWidth, std::size_t Hidden, std::size_t... I>
struct vgg_layers<Input, conv_arch<Blocks...>, BatchNorm, Classes, HeadHeight, HeadWidth, Hidden,
                  std::index_sequence<I...>> {
    static constexpr std::array<std::size_t, sizeof...(Blocks)> outs{Blocks::out_channels...};
    template <std::size_t Index, class Block>
    using block_spec =
        vgg_block_spec<BatchNorm, Block::num_convs, block_in_channels<Input, Blocks...>(Index), Block::out_channels>;

    // The head's in_features as the seed writes them (out_channels*7*7 at 224x224), against
    // the size the blocks really produce.
    static constexpr std::size_t head_in_features = outs.back() * HeadHeight * HeadWidth;
    static constexpr std::size_t flattened = output_shape_t<Input, block_spec<I, Blocks>...>::size;
    VGG_RULE(head_matches,
             "VGG head: Linear in_features (out_channels*HeadHeight*HeadWidth) must equal the flattened size of "
             "the last block's output.",
             rules::head_matches_flatten_v<head_in_features, flattened>);
    static_assert(rules::classes_positive_v<Classes>, "VGG needs at least one output class.");
    // On a mismatch the head is built on the real size.
    static constexpr std::size_t linear_in = head_matches ? head_in_features : flattened;

    using type = sequential_of_lists<Input, layer_list<block_spec<I, Blocks>..., Flatten>,
                                     vgg_classifier<linear_in, Classes, Hidden>>;
};

} // namespace detail

/// The seed's vgg(conv_arch): one VGGBlock per conv_arch entry (VGGBlockBN for batch_norm<Arch>), then
/// Flatten and vgg_classifier<out_channels*HeadHeight*HeadWidth, Classes, Hidden>. Input is shape<C, H, W> (C = 1 for
/// Fashion-MNIST, 3 for RGB). HeadHeight and HeadWidth default to what the pools leave (7 for 224 and five blocks);
/// Hidden is the width of the two hidden fully connected layers (the seed's 4096).
template <class Input, class Arch, std::size_t Classes = 10,
          std::size_t HeadHeight = (image_dims<Input>::height >> Arch::size),
          std::size_t HeadWidth = (image_dims<Input>::width >> Arch::size), std::size_t Hidden = vgg_hidden_features>
class VGG
    : public detail::vgg_layers<Input, typename detail::arch_blocks<Arch>::type, detail::arch_blocks<Arch>::batch_norm,
                                Classes, HeadHeight, HeadWidth, Hidden>::type {
public:
    using arch = Arch;
    static constexpr std::size_t classes = Classes;
};

/// Freezes the convolutional blocks of a VGG or a torchvision VGG (Net::arch names them), as
/// fine-tuning a new head on pretrained features does; Sequential::freeze takes any range.
// clang-format off
template <class Net>
    requires requires { Net::arch::size; }
void freeze_features(Net& net)
// clang-format on
{
    net.freeze(0, Net::arch::size);
}

/// The seed's network: VGG-11 with channels divided by 4, for 1x224x224 Fashion-MNIST.
using seed_vgg11 = VGG<shape<1, 224, 224>, small_conv_arch<vgg11_arch, 4>, 10>;

} // namespace vgg
