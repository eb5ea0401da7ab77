#pragma once
#include <algorithm>
#include <string_view>

#include "vgg/core/layer.hpp"
#include "vgg/core/tensor.hpp"
#include "vgg/kernels/elementwise.hpp"

namespace vgg {

template <class InputShape>
class relu_layer;

/// nn.ReLU(): max(x, 0), any shape.
struct ReLU {
    template <class S>
    using output_shape = S;
    template <class S>
    using layer = relu_layer<S>;
};

template <class InputShape>
class relu_layer {
public:
    static constexpr std::string_view name = "ReLU";
    using input_shape = InputShape;
    using output_shape = InputShape;
    static constexpr std::size_t parameter_count = 0;

    void forward(const tensor<input_shape>& x, tensor<output_shape>& y, const run_context&)
    {
        y.resize(x.batch());
        std::copy(x.values().begin(), x.values().end(), y.values().begin());
        kernels::relu_inplace(y.data(), y.size());
    }

    void backward(const tensor<input_shape>&, const tensor<output_shape>& y, const tensor<output_shape>& dy,
                  tensor<input_shape>* dx)
    {
        if (!dx)
            return;
        dx->resize(dy.batch());
        std::copy(dy.values().begin(), dy.values().end(), dx->values().begin());
        kernels::relu_backward_inplace(dx->data(), y.data(), dx->size());
    }
};

} // namespace vgg
