#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

#include "vgg/core/layer.hpp"
#include "vgg/core/rules.hpp"
#include "vgg/core/tensor.hpp"
#include "vgg/kernels/maxpool.hpp"

namespace vgg {

template <class InputShape>
class maxpool2x2_layer;

/// nn.MaxPool2d(kernel_size=2, stride=2): shape<C, H, W> to shape<C, H/2, W/2>. Unlike
/// PyTorch, an odd height or width is a compile error instead of a silently dropped row.
struct MaxPool2x2 {
    template <class S>
    using output_shape = shape<image_dims<S>::channels, image_dims<S>::height / 2, image_dims<S>::width / 2>;
    template <class S>
    using layer = maxpool2x2_layer<S>;
};

template <class InputShape>
class maxpool2x2_layer {
    static_assert(
        rules::image_input_v<InputShape>,
        "MaxPool2x2 needs an image input, shape<Channels, Height, Width>: it cannot follow Flatten or Linear.");
    static_assert(rules::poolable_v<image_dims<InputShape>::height, image_dims<InputShape>::width>,
                  "MaxPool2x2 needs an even input height and width (below), or its 2x2 windows would drop pixels.");
    using dims = image_dims<InputShape>;

public:
    static constexpr std::string_view name = "MaxPool2d";
    using input_shape = InputShape;
    using output_shape = MaxPool2x2::output_shape<InputShape>;
    static constexpr std::size_t parameter_count = 0;

    void forward(const tensor<input_shape>& x, tensor<output_shape>& y, const run_context&)
    {
        y.resize(x.batch());
        argmax_.resize(y.size());
        kernels::maxpool2x2_forward(x.batch() * dims::channels, dims::height, dims::width, x.data(), y.data(),
                                    argmax_.data());
    }

    void backward(const tensor<input_shape>&, const tensor<output_shape>&, const tensor<output_shape>& dy,
                  tensor<input_shape>* dx)
    {
        if (!dx)
            return;
        dx->resize(dy.batch());
        kernels::maxpool2x2_backward(dy.batch() * dims::channels, dims::height, dims::width, dy.data(), argmax_.data(),
                                     dx->data());
    }

private:
    std::vector<std::uint8_t> argmax_;
};

} // namespace vgg
