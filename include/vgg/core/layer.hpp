#pragma once
#include <algorithm>
#include <cstddef>
#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
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

/// Whether a backward pass writes a layer's parameter gradients, or only its input gradient (a
/// frozen layer: its parameters get no gradient).
enum class parameter_gradients { compute, skip };

/// How a parameter lays its values out in memory: in the row-major order of its shape, as PyTorch
/// and weight files do, or, for a matrix, transposed: Linear keeps its [Out, In] weight as
/// [In, Out], so one input's weights are contiguous and a zero input's need not be read.
enum class storage_order { as_shape, transposed };

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
    /// Whether its layer is frozen (Sequential::freeze): then trainable is false too, and the
    /// optimiser, the gradient exchange and the backward pass leave it alone.
    bool frozen = false;
    /// Index of the top-level layer holding it (set by Sequential), the order backward reaches it in.
    std::size_t layer = 0;
    /// How `value` and `grad` lay it out: files and PyTorch have it in the order of `shape`
    /// (copy_in_shape_order, copy_from_shape_order translate).
    storage_order order = storage_order::as_shape;
    /// The places of the layers holding it, outermost first, as its name counts them ("2.3.weight":
    /// {2, 3}): each Sequential, and each block holding layers, adds its own on the way out.
    std::vector<std::size_t> path{};
};

namespace detail {

/// to[c][r] = from[r][c] for a rows x columns row-major matrix `from`, in square blocks that
/// stay in L1 while both sides are read and written.
inline void transpose_matrix(const float* from, std::size_t rows, std::size_t columns, float* to)
{
    constexpr std::size_t block = 32;
    for (std::size_t r0 = 0; r0 < rows; r0 += block)
        for (std::size_t c0 = 0; c0 < columns; c0 += block)
            for (std::size_t r = r0; r < std::min(r0 + block, rows); ++r)
                for (std::size_t c = c0; c < std::min(c0 + block, columns); ++c)
                    to[c * rows + r] = from[r * columns + c];
}

} // namespace detail

/// Copies `stored` (a tensor of `shape` laid out in `order`: a parameter's values, gradient or
/// momentum) to `to` in the row-major order of `shape`, as weight files and PyTorch hold it.
inline void copy_in_shape_order(const std::vector<std::size_t>& shape, storage_order order,
                                std::span<const float> stored, float* to)
{
    if (order == storage_order::transposed)
        detail::transpose_matrix(stored.data(), shape.at(1), shape.at(0), to);
    else
        std::copy(stored.begin(), stored.end(), to);
}

/// Copies `ordered` (a tensor of `shape` in its row-major order, as a weight file holds it) to
/// `to`, laid out in `order`.
inline void copy_from_shape_order(const std::vector<std::size_t>& shape, storage_order order,
                                  std::span<const float> ordered, float* to)
{
    if (order == storage_order::transposed)
        detail::transpose_matrix(ordered.data(), shape.at(0), shape.at(1), to);
    else
        std::copy(ordered.begin(), ordered.end(), to);
}

/// A layer spec is what networks are written with (Conv3x3<1, 16>, ReLU, MaxPool2x2, Flatten,
/// Linear<512, 10>, Dropout<50>, VGGBlock<2, 16, 32>): for the shape that reaches it, it names
/// its output shape and the layer bound to that shape (conv3x3_layer<1, 16, shape<...>>), which
/// Sequential builds.
// clang-format off
template <class Spec, class InputShape>
concept layer_spec_for = requires {
    typename Spec::template output_shape<InputShape>;
    typename Spec::template layer<InputShape>;
};
// clang-format on

/// How conv and linear weights are initialised; biases always follow PyTorch's default,
/// uniform in +-1/sqrt(fan_in).
enum class weight_init {
    xavier_uniform, ///< d2l's train_ch6: uniform in +-sqrt(6 / (fan_in + fan_out)).
    pytorch_default ///< nn.Conv2d / nn.Linear reset_parameters: uniform in +-1/sqrt(fan_in).
};

/// A layer bound to the shape that reaches it, as a spec's layer<Shape> names it: what Sequential
/// stores and runs. It has a name (PyTorch's module name, for summaries) and a parameter count;
/// forward(x, y, context) writes y; backward(x, y, dy, dx) writes the parameter gradients, and dx
/// when it is not null. A layer with parameters also initialises them, visits them
/// (visit_parameters(prefix, visitor) with the names under `prefix`) and takes
/// backward(x, y, dy, dx, parameter_gradients::skip), which writes dx alone (a frozen layer).
// clang-format off
template <class Layer>
concept bound_layer =
    requires(Layer& layer, const tensor<typename Layer::input_shape>& x, tensor<typename Layer::output_shape>& y,
             const tensor<typename Layer::output_shape>& dy, tensor<typename Layer::input_shape>* dx,
             const run_context& context) {
        { Layer::name } -> std::convertible_to<std::string_view>;
        { Layer::parameter_count } -> std::convertible_to<std::size_t>;
        layer.forward(x, y, context);
        layer.backward(x, y, dy, dx);
    } &&
    (Layer::parameter_count == 0 ||
     requires(Layer& layer, const tensor<typename Layer::input_shape>& x, const tensor<typename Layer::output_shape>& y,
              const tensor<typename Layer::output_shape>& dy, tensor<typename Layer::input_shape>* dx, rng& random) {
         layer.initialize(weight_init::xavier_uniform, random);
         layer.visit_parameters(std::string{}, [](const parameter_view&) {});
         layer.backward(x, y, dy, dx, parameter_gradients::skip);
     });
// clang-format on

/// A network as the optimiser, the weight I/O and the MPI code take it (Sequential and VGG are
/// networks): forward(x) returns the output, backward(dy) writes the parameter gradients, and
/// visit_parameters(visitor) calls visitor(parameter_view) for every learnable tensor.
// clang-format off
template <class Net>
concept network = requires(Net& net, const tensor<typename Net::input_shape>& x,
                           const tensor<typename Net::output_shape>& dy) {
    net.forward(x);
    net.backward(dy);
    net.visit_parameters([](const parameter_view&) {});
};
// clang-format on

/// The check of every function that takes a network, with one sentence: `what` names the call,
/// as "save_weights(net, path)".
#define VGG_REQUIRE_NETWORK(Net, what)                                                                                 \
    static_assert(::vgg::network<Net>,                                                                                 \
                  what " needs a network such as Sequential or VGG: forward(x), backward(dy) and "                     \
                       "visit_parameters(visitor).")

} // namespace vgg
