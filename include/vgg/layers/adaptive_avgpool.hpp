#pragma once
#include <cstddef>
#include <string_view>

#include "vgg/core/layer.hpp"
#include "vgg/core/rules.hpp"
#include "vgg/core/tensor.hpp"
#include "vgg/kernels/avgpool.hpp"

namespace vgg {

template <std::size_t Height, std::size_t Width, class InputShape>
class adaptive_avgpool2d_layer;

/// nn.AdaptiveAvgPool2d((Height, Width)): shape<C, H, W> to shape<C, Height, Width>, averaging
/// windows as PyTorch chooses them. torchvision's VGG puts AdaptiveAvgPool2d<7, 7> before its
/// classifier, the identity at 224x224 and what lets other input sizes share the weights.
template <std::size_t Height, std::size_t Width>
struct AdaptiveAvgPool2d {
    template <class S>
    using output_shape = shape<image_dims<S>::channels, Height, Width>;
    template <class S>
    using layer = adaptive_avgpool2d_layer<Height, Width, S>;
};

template <std::size_t Height, std::size_t Width, class InputShape>
class adaptive_avgpool2d_layer {
    static_assert(
        rules::image_input_v<InputShape>,
        "AdaptiveAvgPool2d needs an image input, shape<Channels, Height, Width>: it cannot follow Flatten or Linear.");
    static_assert(rules::channels_positive_v<Height> && rules::channels_positive_v<Width>,
                  "AdaptiveAvgPool2d<Height, Width> needs an output of at least one pixel.");
    using in = image_dims<InputShape>;

public:
    static constexpr std::string_view name = "AdaptiveAvgPool2d";
    using input_shape = InputShape;
    using output_shape = typename AdaptiveAvgPool2d<Height, Width>::template output_shape<InputShape>;
    static constexpr std::size_t parameter_count = 0;

    void forward(const tensor<input_shape>& x, tensor<output_shape>& y, const run_context&)
    {
        y.resize(x.batch());
        kernels::adaptive_avgpool_forward(dims(x.batch()), x.data(), y.data());
    }

    void backward(const tensor<input_shape>&, const tensor<output_shape>&, const tensor<output_shape>& dy,
                  tensor<input_shape>* dx)
    {
        if (!dx)
            return;
        dx->resize(dy.batch());
        kernels::adaptive_avgpool_backward(dims(dy.batch()), dy.data(), dx->data());
    }

private:
    static kernels::adaptive_pool_dims dims(std::size_t batch)
    {
        return {batch * in::channels, in::height, in::width, Height, Width};
    }
};

} // namespace vgg
