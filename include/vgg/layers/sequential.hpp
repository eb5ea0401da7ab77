#pragma once
#include <algorithm>
#include <array>
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
#include "vgg/detail/exclusive_use.hpp"
#include "vgg/layers/layer_chain.hpp"

namespace vgg {

namespace detail {

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

} // namespace detail

/// A gradient given at the output of layer `Index` of a network (a tap), for
/// Sequential::backward_from_taps: made by vgg::tap<Index>(gradient).
template <std::size_t Index, class Shape>
struct tap_gradient {
    static constexpr std::size_t index = Index;
    using shape = Shape;
    const tensor<Shape>& gradient;
};

/// The gradient of a loss with respect to the output of layer Index: tap<3>(g).
template <std::size_t Index, class Shape>
tap_gradient<Index, Shape> tap(const tensor<Shape>& gradient)
{
    return {gradient};
}

namespace detail {

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
    /// call run() once: a place to time or trace layers. Frozen layers run in evaluation mode
    /// (batch norm by its running statistics, no dropout). An empty batch is an error
    /// (std::invalid_argument). A network is not thread-safe: a call while another forward or
    /// backward of it runs is refused (std::logic_error); give each thread its own network.
    template <class AroundLayer = run_directly>
    const tensor<output_shape>& forward(const tensor<input_shape>& x, const run_context& context = {},
                                        AroundLayer around_layer = {})
    {
        return forward_to<count - 1>(x, context, around_layer);
    }

    /// Runs layers 0 to Last only, as forward does, and returns layer Last's output: the
    /// features at a layer, or the taps up to it (output<I>() for I <= Last) for
    /// backward_from_taps.
    template <std::size_t Last, class AroundLayer = run_directly>
    const tensor<typename layer_at<Last>::output_shape>&
    forward_to(const tensor<input_shape>& x, const run_context& context = {}, AroundLayer around_layer = {})
    {
        static_assert(Last < count, "forward_to<Last>: Last must be the index of a layer of this network.");
        const exclusive_use::hold held(in_use_, "Sequential::forward");
        if (x.batch() == 0)
            throw std::invalid_argument("Sequential::forward: the input batch is empty (0 samples)");
        input_ = &x;
        batch_ = 0; // no backward from a forward pass that did not finish
        forward_each(context, around_layer, std::make_index_sequence<Last + 1>{});
        batch_ = x.batch();
        reached_ = Last;
        return std::get<Last>(outputs_);
    }

    /// Backpropagates `dy` (the gradient of the loss with respect to the last forward's output)
    /// and overwrites the parameter gradients of every trainable layer. Frozen layers get no
    /// gradients, and the pass stops at the lowest trainable layer unless dx asks for the input
    /// gradient (then frozen layers compute only their input gradient). With dx null the first
    /// layer skips its input gradient, which nothing needs when it is the network's input.
    /// Calling it before any forward or after forward_to (std::logic_error), with a batch other
    /// than the last forward's, or after the forward pass's input changed its batch
    /// (std::invalid_argument) is an error.
    template <class AroundLayer = run_directly>
    void backward(const tensor<output_shape>& dy, tensor<input_shape>* dx = nullptr, AroundLayer around_layer = {})
    {
        const exclusive_use::hold held(in_use_, "Sequential::backward");
        check_backward(dy.batch(), count - 1);
        backward_down_from<count - 1>(dy, dx, around_layer, lowest_layer_to_run(dx), [](auto, auto&) {});
    }

    /// Backpropagates gradients given at the outputs of one or more layers (tap<I>(g), any order,
    /// each I at most once) down to the input: what a perceptual loss on inner activations needs.
    /// The last forward pass (forward or forward_to) must have reached the highest tap. Parameter
    /// gradients are written as backward writes them (none for frozen layers); dx, when not null,
    /// receives the input gradient.
    template <std::size_t... I, class... Shapes>
    void backward_from_taps(tensor<input_shape>* dx, const tap_gradient<I, Shapes>&... taps)
    {
        static_assert(sizeof...(I) > 0, "backward_from_taps needs at least one tap<I>(gradient).");
        static_assert(((I < count) && ...),
                      "backward_from_taps: each tap<I> must name a layer of this network (I < layer_count).");
        static_assert((std::is_same_v<Shapes, typename layer_at<(I < count ? I : 0)>::output_shape> && ...),
                      "backward_from_taps: the gradient given at tap<I> must have the shape of layer I's output.");
        constexpr std::array<std::size_t, sizeof...(I)> indices{I...};
        constexpr std::size_t top = std::max({I...});
        static_assert(all_different(indices), "backward_from_taps: each layer may be tapped once.");
        const exclusive_use::hold held(in_use_, "Sequential::backward");
        const tensor<typename layer_at<top>::output_shape>* top_gradient = nullptr;
        const auto find_top = [&](const auto& t) {
            if constexpr (std::remove_cvref_t<decltype(t)>::index == top)
                top_gradient = &t.gradient;
        };
        (find_top(taps), ...);
        const auto check_batch = [&](std::size_t index, std::size_t batch) {
            if (batch != batch_)
                throw std::invalid_argument("Sequential::backward_from_taps: the gradient at layer " +
                                            std::to_string(index) + " has a batch of " + std::to_string(batch) +
                                            ", but the last forward pass had " + std::to_string(batch_) + " samples");
        };
        check_backward(top_gradient->batch(), top);
        (check_batch(I, taps.gradient.batch()), ...);
        const auto add_taps = [&]<std::size_t J>(std::integral_constant<std::size_t, J>, auto& gradient) {
            const auto add_one = [&](const auto& t) {
                if constexpr (std::remove_cvref_t<decltype(t)>::index == J) {
                    float* to = gradient.data();
                    const float* from = t.gradient.data();
                    for (std::size_t k = 0; k < gradient.size(); ++k)
                        to[k] += from[k];
                }
            };
            (add_one(taps), ...);
        };
        run_directly around;
        backward_down_from<top>(*top_gradient, dx, around, lowest_layer_to_run(dx), add_taps);
    }

    /// Whether no two of `values` are equal.
    template <std::size_t N>
    static constexpr bool all_different(const std::array<std::size_t, N>& values)
    {
        for (std::size_t a = 0; a < N; ++a)
            for (std::size_t b = a + 1; b < N; ++b)
                if (values[a] == values[b])
                    return false;
        return true;
    }

    /// The input gradient alone: backward with every layer treated as frozen (no parameter
    /// gradient is written). What a block that holds a Sequential runs when it is frozen.
    void backward_input(const tensor<output_shape>& dy, tensor<input_shape>* dx)
    {
        const auto kept = frozen_;
        frozen_.fill(true);
        try {
            backward(dy, dx);
        } catch (...) {
            frozen_ = kept;
            throw;
        }
        frozen_ = kept;
    }

    /// Freezes layers [first, last): their parameters are not trainable (no gradients, no
    /// optimiser updates: parameter_view::frozen), they run in evaluation mode, and backward
    /// stops below the lowest trainable layer. Out-of-range indices are an error (std::out_of_range).
    void freeze(std::size_t first, std::size_t last) { set_frozen(first, last, true); }
    /// Makes layers [first, last) trainable again.
    void unfreeze(std::size_t first, std::size_t last) { set_frozen(first, last, false); }
    bool is_frozen(std::size_t layer) const { return frozen_.at(layer); }

    /// The frozen layers as text for checkpoints: "0-4" (first-last, inclusive, comma-separated
    /// ranges), "" when none.
    std::string frozen_layers() const
    {
        std::string text;
        for (std::size_t i = 0; i < count; ++i) {
            if (!frozen_[i] || (i > 0 && frozen_[i - 1]))
                continue;
            std::size_t last = i;
            while (last + 1 < count && frozen_[last + 1])
                ++last;
            if (!text.empty())
                text += ',';
            text += std::to_string(i);
            if (last > i) {
                text += '-';
                text += std::to_string(last);
            }
        }
        return text;
    }

    /// Draws every conv and linear weight and bias, layer by layer, from `random`.
    void initialize(weight_init init, rng& random)
    {
        std::apply([&](auto&... layer) { (initialize_one(layer, init, random), ...); }, layers_);
    }

    /// Calls visit(parameter_view) for every parameter and buffer, named as PyTorch's
    /// nn.Sequential state_dict names it ("0.0.weight", "6.bias", ...); those of frozen layers
    /// are marked frozen and not trainable.
    template <class Visitor>
    void visit_parameters(Visitor&& visit)
    {
        visit_each(visit, std::make_index_sequence<count>{});
    }

    template <std::size_t I>
    layer_at<I>& layer()
    {
        return std::get<I>(layers_);
    }
    template <std::size_t I>
    const layer_at<I>& layer() const
    {
        return std::get<I>(layers_);
    }
    template <std::size_t I>
    const tensor<typename layer_at<I>::output_shape>& output() const
    {
        return std::get<I>(outputs_);
    }

    /// Calls visit(index, layer, output) for each layer, with the outputs of the last forward.
    template <class Visitor>
    void visit_layers(Visitor&& visit) const
    {
        visit_layers_each(visit, std::make_index_sequence<count>{});
    }

private:
    void set_frozen(std::size_t first, std::size_t last, bool frozen)
    {
        if (first > last || last > count)
            throw std::out_of_range("Sequential::" + std::string(frozen ? "freeze" : "unfreeze") + "(" +
                                    std::to_string(first) + ", " + std::to_string(last) +
                                    "): the network has layers 0 to " + std::to_string(count - 1) +
                                    "; give a range [first, last) within them");
        std::fill(frozen_.begin() + static_cast<std::ptrdiff_t>(first),
                  frozen_.begin() + static_cast<std::ptrdiff_t>(last), frozen);
    }

    void check_backward(std::size_t gradient_batch, std::size_t top) const
    {
        if (batch_ == 0)
            throw std::logic_error(
                "Sequential::backward called before forward, or after a forward pass that failed: it "
                "needs the activations of a whole forward pass");
        if (reached_ < top)
            throw std::logic_error("Sequential::backward: the last forward pass stopped at layer " +
                                   std::to_string(reached_) + " (forward_to), below layer " + std::to_string(top) +
                                   " where the gradient starts");
        if (gradient_batch != batch_)
            throw std::invalid_argument("Sequential::backward: the gradient has a batch of " +
                                        std::to_string(gradient_batch) + ", but the last forward pass had " +
                                        std::to_string(batch_) + " samples");
        if (input_->batch() != batch_)
            throw std::invalid_argument("Sequential::backward: the input of the last forward pass had " +
                                        std::to_string(batch_) + " samples and now has " +
                                        std::to_string(input_->batch()) + ": it must stay unchanged until backward");
    }

    /// The lowest layer a backward pass runs: 0 when the input gradient is asked for, else the
    /// lowest trainable layer with parameters (count when there is none: nothing to run).
    std::size_t lowest_layer_to_run(const tensor<input_shape>* dx) const
    {
        if (dx)
            return 0;
        constexpr std::array<bool, count> has_parameters{(Layers::parameter_count > 0)...};
        for (std::size_t i = 0; i < count; ++i)
            if (has_parameters[i] && !frozen_[i])
                return i;
        return count;
    }

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
        const auto context_of = [&](std::size_t index) {
            run_context c = context.at(index);
            if (frozen_[index])
                c.mode = mode::eval;
            return c;
        };
        (around_layer(I, [&] { std::get<I>(layers_).forward(input_of<I>(), std::get<I>(outputs_), context_of(I)); }),
         ...);
    }

    /// Layer I's backward from `gradient_out` (its output's gradient): its input gradient goes to
    /// the layer below unless I is the lowest to run, and a frozen layer computes only that.
    template <std::size_t I, class Gradient>
    void backward_one(const Gradient& gradient_out, tensor<input_shape>* dx, std::size_t lowest)
    {
        using layer_type = layer_at<I>;
        auto* gradient_in = [&]() -> tensor<typename layer_type::input_shape>* {
            if constexpr (I == 0)
                return dx;
            else
                return I == lowest ? nullptr : &std::get<I - 1>(gradients_);
        }();
        auto& layer = std::get<I>(layers_);
        if constexpr (layer_type::parameter_count == 0) {
            layer.backward(input_of<I>(), std::get<I>(outputs_), gradient_out, gradient_in);
        } else {
            static_assert(
                requires {
                    layer.backward(input_of<I>(), std::get<I>(outputs_), gradient_out, gradient_in,
                                   parameter_gradients::skip);
                },
                "Sequential: a layer with parameters must offer backward(x, y, dy, dx, parameter_gradients), "
                "which can skip its parameter gradients when it is frozen.");
            if (!frozen_[I])
                layer.backward(input_of<I>(), std::get<I>(outputs_), gradient_out, gradient_in);
            else if (gradient_in)
                layer.backward(input_of<I>(), std::get<I>(outputs_), gradient_out, gradient_in,
                               parameter_gradients::skip);
        }
    }

    /// Backward from the gradient of layer Top's output down to layer `lowest`; add_taps(J,
    /// gradient) adds any gradient given at layer J's output once the layer above wrote it.
    template <std::size_t Top, class AroundLayer, class AddTaps>
    void backward_down_from(const tensor<typename layer_at<Top>::output_shape>& top_gradient, tensor<input_shape>* dx,
                            AroundLayer& around_layer, std::size_t lowest, AddTaps&& add_taps)
    {
        backward_layers<Top>(top_gradient, dx, around_layer, lowest, add_taps, std::make_index_sequence<Top + 1>{});
    }

    template <std::size_t Top, class AroundLayer, class AddTaps, std::size_t... K>
    void backward_layers(const tensor<typename layer_at<Top>::output_shape>& top_gradient, tensor<input_shape>* dx,
                         AroundLayer& around_layer, std::size_t lowest, AddTaps& add_taps, std::index_sequence<K...>)
    {
        const auto run = [&]<std::size_t I>(std::integral_constant<std::size_t, I>) {
            if (I < lowest)
                return;
            if constexpr (I == Top) {
                around_layer(I, [&] { backward_one<I>(top_gradient, dx, lowest); });
            } else {
                add_taps(std::integral_constant<std::size_t, I>{}, std::get<I>(gradients_));
                around_layer(I, [&] { backward_one<I>(std::get<I>(gradients_), dx, lowest); });
            }
        };
        (run(std::integral_constant<std::size_t, Top - K>{}), ...);
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
                    p.path.insert(p.path.begin(), index);
                    if (frozen_[index]) {
                        p.frozen = true;
                        p.trainable = false;
                    }
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
    std::array<bool, count> frozen_{};
    std::tuple<tensor<typename Layers::output_shape>...> outputs_;
    std::tuple<tensor<typename Layers::output_shape>...> gradients_;
    const tensor<input_shape>* input_ = nullptr;
    std::size_t batch_ = 0;   ///< the batch of the last forward pass; 0 until one finishes
    std::size_t reached_ = 0; ///< the last layer the last forward pass ran
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
