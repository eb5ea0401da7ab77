#pragma once
#include <cstddef>
#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vgg/core/precision.hpp"
#include "vgg/core/rng.hpp"
#include "vgg/core/tensor.hpp"

namespace vgg {

/// Training activates dropout; evaluation turns it into the identity.
enum class mode { train, eval };

/// What a forward pass needs besides its input. `stream` keys every random draw of the pass
/// (dropout masks): the same stream gives the same masks whatever the thread count.
struct run_context {
    vgg::mode mode = vgg::mode::eval;
    std::uint64_t stream = 0;
    /// Where this batch starts inside the global batch when several processes share one (data
    /// parallelism): sample n draws as sample first_sample + n would in one process.
    std::size_t first_sample = 0;
    /// The arithmetic of the convolutions and fully connected layers (precision.hpp); a
    /// backward pass runs in the precision of its forward pass.
    vgg::precision precision = vgg::precision::fp32;

    /// The context handed to the layer at `position` inside a container.
    run_context at(std::size_t position) const { return {mode, mix64(stream, position), first_sample, precision}; }
};

/// A view of one tensor of a network's state, as PyTorch's state_dict holds it: its name, its
/// shape, its values and the gradient the last backward pass wrote for it. A buffer (batch
/// norm's running statistics) is state but not learnt: it has no gradient and `trainable` is
/// false, so the optimiser and the gradient exchange pass it by while weight files keep it.
struct parameter_view {
    std::string name;
    std::vector<std::size_t> shape;
    std::span<float> value;
    std::span<float> grad;
    bool trainable = true;
    /// Index of the top-level layer holding it (set by Sequential), the order backward reaches it in.
    std::size_t layer = 0;
};

/// A layer spec is what networks are written with (Conv3x3<1, 16>, ReLU, MaxPool2x2, Flatten,
/// Linear<512, 10>, Dropout<50>, VGGBlock<2, 16, 32>): for the shape that reaches it, it names
/// its output shape and the layer bound to that shape (conv3x3_layer<1, 16, shape<...>>), which
/// Sequential builds.
template <class Spec, class InputShape>
concept layer_spec_for = requires {
    typename Spec::template output_shape<InputShape>;
    typename Spec::template layer<InputShape>;
};

/// A layer bound to the shape that reaches it, as a spec's layer<Shape> names it: what Sequential
/// stores and runs. forward(x, y, context) writes y; backward(x, y, dy, dx) writes the parameter
/// gradients, and dx when it is not null.
template <class Layer>
concept bound_layer = requires(Layer& layer, const tensor<typename Layer::input_shape>& x,
                               tensor<typename Layer::output_shape>& y, const tensor<typename Layer::output_shape>& dy,
                               tensor<typename Layer::input_shape>* dx, const run_context& context) {
    { Layer::parameter_count } -> std::convertible_to<std::size_t>;
    layer.forward(x, y, context);
    layer.backward(x, y, dy, dx);
};

/// A network as the optimiser, the weight I/O and the MPI code take it (Sequential and VGG are
/// networks): forward(x) returns the output, backward(dy) writes the parameter gradients, and
/// visit_parameters(visitor) calls visitor(parameter_view) for every learnable tensor.
template <class Net>
concept network = requires(Net& net, const tensor<typename Net::input_shape>& x,
                           const tensor<typename Net::output_shape>& dy) {
    net.forward(x);
    net.backward(dy);
    net.visit_parameters([](const parameter_view&) {});
};

/// How conv and linear weights are initialised; biases always follow PyTorch's default,
/// uniform in +-1/sqrt(fan_in).
enum class weight_init {
    xavier_uniform, ///< d2l's train_ch6: uniform in +-sqrt(6 / (fan_in + fan_out)).
    pytorch_default ///< nn.Conv2d / nn.Linear reset_parameters: uniform in +-1/sqrt(fan_in).
};

} // namespace vgg
