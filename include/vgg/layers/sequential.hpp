#pragma once
#include <array>
#include <atomic>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "vgg/core/layer.hpp"
#include "vgg/core/rng.hpp"
#include "vgg/core/rules.hpp"
#include "vgg/core/tensor.hpp"

namespace vgg {

namespace detail {

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

template <class Shape, class... Layers, class Spec>
    requires layer_spec_for<Spec, Shape>
auto operator>>(layer_chain<Shape, Layers...>, spec_tag<Spec>)
    -> layer_chain<typename Spec::template output_shape<Shape>, Layers..., typename Spec::template layer<Shape>>;

// Something that is not a layer spec gets one sentence (when the fold goes on from it, or at
// its end) and is left out, so that the layers after it raise no errors of their own.
template <class Spec, class Shape, class... Layers>
struct not_a_layer_spec : layer_chain<Shape, Layers...> {
    static_assert(layer_spec_for<Spec, Shape>,
                  "Sequential<Input, Specs...>: each of Specs must be a layer spec such as Conv3x3<1, 16>, ReLU, "
                  "MaxPool2x2, Flatten, Linear<512, 10> or VGGBlock<2, 16, 32>, not a bound layer or another type.");
};
template <class Shape, class... Layers, class Spec>
    requires(!layer_spec_for<Spec, Shape>)
auto operator>>(layer_chain<Shape, Layers...>, spec_tag<Spec>) -> not_a_layer_spec<Spec, Shape, Layers...>;

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
struct network_input : layer_chain<std::conditional_t<rules::network_input_v<Input>, Input,
                                                      typename unchecked_input<Input>::type>> {
    static_assert(rules::network_input_v<Input>,
                  "Sequential<Input, Specs...>: Input must be shape<Channels, Height, Width> for images or "
                  "shape<Features> for vectors; a one-channel image is shape<1, Height, Width>.");
};

template <class Input, class... Specs>
using bind_layers = decltype((network_input<Input>{} >> ... >> spec_tag<Specs>{}));

/// Refuses a second forward or backward on one network while one runs (a call from another
/// thread): a network keeps its activations and gradients in itself, so two calls at once would
/// overwrite each other's. Copies start free.
class exclusive_use {
public:
    exclusive_use() = default;
    exclusive_use(const exclusive_use&) {}
    exclusive_use& operator=(const exclusive_use&) { return *this; }

    /// Holds the network for one call.
    class hold {
    public:
        hold(exclusive_use& use, const char* call) : use_(use)
        {
            if (use_.busy_.exchange(true, std::memory_order_acquire))
                throw std::logic_error(std::string("Sequential::") + call +
                                       ": another forward or backward of this network is running (on another thread); a "
                                       "network is not thread-safe: give each thread its own copy");
        }
        ~hold() { use_.busy_.store(false, std::memory_order_release); }
        hold(const hold&) = delete;
        hold& operator=(const hold&) = delete;

    private:
        exclusive_use& use_;
    };

private:
    std::atomic<bool> busy_{false};
};

/// The default for Sequential's per-layer hook: just run the layer.
struct run_directly {
    template <class Run>
    void operator()(std::size_t, Run&& run) const
    {
        run();
    }
};

template <class Input, class LayerList>
class sequential_impl;

template <class Input, class... Layers>
class sequential_impl<Input, type_list<Layers...>> {
    static_assert((bound_layer<Layers> && ...),
                  "Sequential: the layer each spec binds (Spec::layer<Shape>) must have input_shape, output_shape, "
                  "parameter_count, forward(x, y, context) and backward(x, y, dy, dx).");
    static constexpr std::size_t count = sizeof...(Layers);
    using layer_tuple = std::tuple<Layers...>;
    template <std::size_t I>
    using layer_at = std::tuple_element_t<I, layer_tuple>;

public:
    using input_shape = Input;
    using output_shape = typename layer_at<count - 1>::output_shape;
    static constexpr std::size_t layer_count = count;
    static constexpr std::size_t parameter_count = (Layers::parameter_count + ...);

    /// Runs every layer in order and keeps each output for backward. `x` must stay alive and
    /// unchanged until backward. `around_layer(index, run)` is called for each layer and must
    /// call run() once: a place to time or trace layers. An empty batch is an error
    /// (std::invalid_argument). A network is not thread-safe: a call while another forward or
    /// backward of it runs is refused (std::logic_error); give each thread its own network.
    template <class AroundLayer = run_directly>
    const tensor<output_shape>& forward(const tensor<input_shape>& x, const run_context& context = {},
                                        AroundLayer around_layer = {})
    {
        const exclusive_use::hold held(in_use_, "forward");
        if (x.batch() == 0)
            throw std::invalid_argument("Sequential::forward: the input batch is empty (0 samples)");
        input_ = &x;
        batch_ = 0; // no backward from a forward pass that did not finish
        forward_each(context, around_layer, std::make_index_sequence<count>{});
        batch_ = x.batch();
        return std::get<count - 1>(outputs_);
    }

    /// Backpropagates `dy` (the gradient of the loss with respect to the last forward's output)
    /// and overwrites every parameter gradient. With dx null the first layer skips its input
    /// gradient, which nothing needs when it is the network's input. Calling it before any
    /// forward (std::logic_error), with a batch other than the last forward's, or after the
    /// forward pass's input changed its batch (std::invalid_argument) is an error.
    template <class AroundLayer = run_directly>
    void backward(const tensor<output_shape>& dy, tensor<input_shape>* dx = nullptr, AroundLayer around_layer = {})
    {
        const exclusive_use::hold held(in_use_, "backward");
        if (batch_ == 0)
            throw std::logic_error("Sequential::backward called before forward, or after a forward pass that failed: it "
                                   "needs the activations of a whole forward pass");
        if (dy.batch() != batch_)
            throw std::invalid_argument("Sequential::backward: the gradient has a batch of " + std::to_string(dy.batch()) +
                                        ", but the last forward pass had " + std::to_string(batch_) + " samples");
        if (input_->batch() != batch_)
            throw std::invalid_argument("Sequential::backward: the input of the last forward pass had " +
                                        std::to_string(batch_) + " samples and now has " +
                                        std::to_string(input_->batch()) +
                                        ": it must stay unchanged until backward");
        backward_each(dy, dx, around_layer, std::make_index_sequence<count>{});
    }

    /// Draws every conv and linear weight and bias, layer by layer, from `random`.
    void initialize(weight_init init, rng& random)
    {
        std::apply([&](auto&... layer) { (initialize_one(layer, init, random), ...); }, layers_);
    }

    /// Calls visit(parameter_view) for every parameter and buffer, named as PyTorch's
    /// nn.Sequential state_dict names it ("0.0.weight", "6.bias", ...).
    template <class Visitor>
    void visit_parameters(Visitor&& visit)
    {
        visit_each(visit, std::make_index_sequence<count>{});
    }

    template <std::size_t I>
    layer_at<I>& layer() { return std::get<I>(layers_); }
    template <std::size_t I>
    const tensor<typename layer_at<I>::output_shape>& output() const { return std::get<I>(outputs_); }

    /// Calls visit(index, layer, output) for each layer, with the outputs of the last forward.
    template <class Visitor>
    void visit_layers(Visitor&& visit) const
    {
        visit_layers_each(visit, std::make_index_sequence<count>{});
    }

private:
    template <std::size_t I>
    const auto& input_of() const
    {
        if constexpr (I == 0)
            return *input_;
        else
            return std::get<I - 1>(outputs_);
    }

    template <class AroundLayer, std::size_t... I>
    void forward_each(const run_context& context, AroundLayer& around_layer, std::index_sequence<I...>)
    {
        (around_layer(I, [&] { std::get<I>(layers_).forward(input_of<I>(), std::get<I>(outputs_), context.at(I)); }), ...);
    }

    template <std::size_t I>
    void backward_one(const tensor<output_shape>& dy, tensor<input_shape>* dx)
    {
        const auto& gradient_out = [&]() -> const auto& {
            if constexpr (I == count - 1)
                return dy;
            else
                return std::get<I>(gradients_);
        }();
        auto* gradient_in = [&] {
            if constexpr (I == 0)
                return dx;
            else
                return &std::get<I - 1>(gradients_);
        }();
        std::get<I>(layers_).backward(input_of<I>(), std::get<I>(outputs_), gradient_out, gradient_in);
    }

    template <class AroundLayer, std::size_t... I>
    void backward_each(const tensor<output_shape>& dy, tensor<input_shape>* dx, AroundLayer& around_layer,
                       std::index_sequence<I...>)
    {
        (around_layer(count - 1 - I, [&] { backward_one<count - 1 - I>(dy, dx); }), ...);
    }

    template <class Layer>
    static void initialize_one(Layer& layer, weight_init init, rng& random)
    {
        if constexpr (Layer::parameter_count > 0)
            layer.initialize(init, random);
    }

    template <class Visitor, std::size_t... I>
    void visit_each(Visitor& visit, std::index_sequence<I...>)
    {
        auto visit_one = [&](auto& layer, std::size_t index) {
            if constexpr (std::remove_reference_t<decltype(layer)>::parameter_count > 0)
                layer.visit_parameters(std::to_string(index) + ".", [&](parameter_view p) {
                    p.layer = index;
                    visit(p);
                });
        };
        (visit_one(std::get<I>(layers_), I), ...);
    }

    template <class Visitor, std::size_t... I>
    void visit_layers_each(Visitor& visit, std::index_sequence<I...>) const
    {
        (visit(I, std::get<I>(layers_), std::get<I>(outputs_)), ...);
    }

    layer_tuple layers_;
    std::tuple<tensor<typename Layers::output_shape>...> outputs_;
    std::tuple<tensor<typename Layers::output_shape>...> gradients_;
    const tensor<input_shape>* input_ = nullptr;
    std::size_t batch_ = 0; ///< the batch of the last forward pass; 0 until one finishes
    exclusive_use in_use_;
};

} // namespace detail

/// nn.Sequential with shapes checked at compile time: `Input` is the per-sample input shape
/// and each of `Specs` a layer spec (Conv3x3<1, 16>, ReLU, VGGBlock<2, 16, 32>, Flatten,
/// Linear<512, 10>, ...). Each spec is bound to the shape that reaches it, and its rules are
/// checked there.
template <class Input, class... Specs>
class Sequential : public detail::sequential_impl<Input, typename detail::bind_layers<Input, Specs...>::layers> {
    static_assert(sizeof...(Specs) > 0, "Sequential needs at least one layer.");
};

/// The output shape of `Specs` applied in order to `Input`, computed without building layers.
template <class Input, class... Specs>
using output_shape_t = typename detail::bind_layers<Input, Specs...>::output_shape;

} // namespace vgg
