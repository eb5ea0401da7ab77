#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include "vgg/core/large_pages.hpp"
#include "vgg/core/layer.hpp"
#include "vgg/core/rng.hpp"
#include "vgg/core/tensor.hpp"

namespace vgg {

/// A learnable tensor and its gradient, with the shape PyTorch gives it, laid out in memory in
/// that shape's order or (a matrix) transposed.
struct parameter {
    explicit parameter(std::initializer_list<std::size_t> dims, storage_order layout = storage_order::as_shape)
        : order(layout)
    {
        // Element by element: GCC 12 reports copying the braced list into the vector in one go
        // as "may be used uninitialized" in every program with a 512-channel layer.
        std::size_t size = 1;
        for (auto d : dims) {
            shape.push_back(d);
            size *= d;
        }
        if (order == storage_order::transposed && shape.size() != 2)
            throw std::invalid_argument("a parameter stored transposed must be a matrix, not a tensor of " +
                                        std::to_string(shape.size()) + " dimensions");
        value.assign(size, 0.f);
        grad.assign(size, 0.f);
    }

    parameter_view view(const std::string& name) { return {name, shape, value, grad, true, false, 0, order}; }

    std::vector<std::size_t> shape;
    storage_order order;
    large_page_vector<float> value, grad;
};

/// A tensor a layer keeps between passes without learning it by gradient, as PyTorch's
/// register_buffer: batch norm's running mean and variance.
struct buffer {
    explicit buffer(std::size_t size, float initial) : value(size, initial) {}

    parameter_view view(const std::string& name) { return {name, {value.size()}, value, {}, false}; }

    aligned_vector<float> value;
};

namespace detail {

/// Initialises a conv or linear layer: the weight by `init`, the bias as PyTorch does.
/// fan_in and fan_out count the receptive field (in * 9 for a 3x3 convolution). The weights are
/// drawn in the order of their shape, however they are stored.
inline void initialize_weight_and_bias(parameter& weight, parameter& bias, std::size_t fan_in, std::size_t fan_out,
                                       weight_init init, rng& random)
{
    const float bound = init == weight_init::xavier_uniform ? std::sqrt(6.f / static_cast<float>(fan_in + fan_out))
                                                            : 1.f / std::sqrt(static_cast<float>(fan_in));
    if (weight.order == storage_order::as_shape) {
        for (auto& w : weight.value)
            w = random.uniform(-bound, bound);
    } else {
        // A few rows of the shape at a time, then each column of them into its stored row.
        const std::size_t rows = weight.shape.at(0), columns = weight.shape.at(1), block = 32;
        std::vector<float> drawn(block * columns);
        for (std::size_t first = 0; first < rows; first += block) {
            const std::size_t count = std::min(block, rows - first);
            for (std::size_t i = 0; i < count * columns; ++i)
                drawn[i] = random.uniform(-bound, bound);
            for (std::size_t c = 0; c < columns; ++c)
                for (std::size_t r = 0; r < count; ++r)
                    weight.value[c * rows + first + r] = drawn[r * columns + c];
        }
    }
    const float bias_bound = 1.f / std::sqrt(static_cast<float>(fan_in));
    for (auto& b : bias.value)
        b = random.uniform(-bias_bound, bias_bound);
}

} // namespace detail
} // namespace vgg
