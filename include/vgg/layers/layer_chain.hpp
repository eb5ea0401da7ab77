#pragma once
// How Sequential binds a list of layer specs to its input shape, one spec at a time.
#include <cstddef>
#include <type_traits>

#include "vgg/core/layer.hpp"
#include "vgg/core/rules.hpp"
#include "vgg/core/shape.hpp"

namespace vgg::detail {

template <class... Ts>
struct type_list {};

// Binding a list of layer specs to an input shape is a left fold over `>>`: each step appends
// the spec bound to the shape so far and moves the shape on. A flat fold keeps compiler
// messages to the one layer at fault instead of the whole network nested inside itself.
template <class Shape, class... Layers>
struct layer_chain {
    using output_shape = Shape;
    using layers = type_list<Layers...>;
};
template <class Spec>
struct spec_tag {};

// clang-format off
template <class Shape, class... Layers, class Spec>
    requires layer_spec_for<Spec, Shape>
auto operator>>(layer_chain<Shape, Layers...>, spec_tag<Spec>)
    -> layer_chain<typename Spec::template output_shape<Shape>, Layers..., typename Spec::template layer<Shape>>;
// clang-format on

// Something that is not a layer spec gets one sentence (when the fold goes on from it, or at
// its end) and is left out, so that the layers after it raise no errors of their own.
template <class Spec, class Shape, class... Layers>
struct not_a_layer_spec : layer_chain<Shape, Layers...> {
    static_assert(layer_spec_for<Spec, Shape>,
                  "Sequential<Input, Specs...>: each of Specs must be a layer spec such as Conv3x3<1, 16>, ReLU, "
                  "MaxPool2x2, Flatten, Linear<512, 10> or VGGBlock<2, 16, 32>, not a bound layer or another type.");
};
// clang-format off
template <class Shape, class... Layers, class Spec>
    requires(!layer_spec_for<Spec, Shape>)
auto operator>>(layer_chain<Shape, Layers...>, spec_tag<Spec>) -> not_a_layer_spec<Spec, Shape, Layers...>;
// clang-format on

// The fold starts from the network's input, checked once. An image given without its channel
// count, shape<Height, Width>, goes on as shape<1, Height, Width> so that no layer reports it
// again; any other rank as shape<1, 1, 1>.
template <class Input>
struct unchecked_input {
    using type = shape<1, 1, 1>;
};
template <std::size_t Height, std::size_t Width>
struct unchecked_input<shape<Height, Width>> {
    using type = shape<1, Height, Width>;
};
template <class Input>
struct network_input
    : layer_chain<std::conditional_t<rules::network_input_v<Input>, Input, typename unchecked_input<Input>::type>> {
    static_assert(rules::network_input_v<Input>,
                  "Sequential<Input, Specs...>: Input must be shape<Channels, Height, Width> for images or "
                  "shape<Features> for vectors; a one-channel image is shape<1, Height, Width>.");
};

template <class Input, class... Specs>
using bind_layers = decltype((network_input<Input>{} >> ... >> spec_tag<Specs>{}));

} // namespace vgg::detail
