#pragma once
#include <algorithm>
#include <string_view>

#include "vgg/core/layer.hpp"
#include "vgg/core/tensor.hpp"

namespace vgg {

template <class InputShape>
class flatten_layer;

/// nn.Flatten(): any shape to shape<C*H*W> (the NCHW order, as in PyTorch).
struct Flatten {
    template <class S>
    using output_shape = shape<S::size>;
    template <class S>
    using layer = flatten_layer<S>;
};

template <class InputShape>
class flatten_layer {
public:
    static constexpr std::string_view name = "Flatten";
    using input_shape = InputShape;
    using output_shape = shape<InputShape::size>;
    static constexpr std::size_t parameter_count = 0;

    void forward(const tensor<input_shape>& x, tensor<output_shape>& y, const run_context&)
    {
        y.resize(x.batch());
        std::copy(x.values().begin(), x.values().end(), y.values().begin());
    }

    void backward(const tensor<input_shape>&, const tensor<output_shape>&, const tensor<output_shape>& dy,
                  tensor<input_shape>* dx)
    {
        if (!dx)
            return;
        dx->resize(dy.batch());
        std::copy(dy.values().begin(), dy.values().end(), dx->values().begin());
    }
};

} // namespace vgg
