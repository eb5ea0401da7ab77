#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "vgg/core/layer.hpp"
#include "vgg/core/rules.hpp"
#include "vgg/core/tensor.hpp"
#include "vgg/detail/parallel.hpp"
#include "vgg/kernels/elementwise.hpp"

namespace vgg {

template <std::size_t Percent, class InputShape>
class dropout_layer;

/// nn.Dropout(Percent / 100): in training, zeroes each element with that probability and
/// scales the survivors by 1 / (1 - p); in evaluation, the identity. Dropout<50> is the seed's.
template <std::size_t Percent = 50>
struct Dropout {
    template <class S>
    using output_shape = S;
    template <class S>
    using layer = dropout_layer<Percent, S>;
};

template <std::size_t Percent, class InputShape>
class dropout_layer {
    static_assert(rules::dropout_percent_valid_v<Percent>,
                  "Dropout<Percent> needs a percentage below 100, or nothing would pass.");

public:
    static constexpr std::string_view name = "Dropout";
    using input_shape = InputShape;
    using output_shape = InputShape;
    static constexpr std::size_t parameter_count = 0;
    static constexpr float probability = static_cast<float>(Percent) / 100.f;

    void forward(const tensor<input_shape>& x, tensor<output_shape>& y, const run_context& context)
    {
        y.resize(x.batch());
        training_ = context.mode == mode::train && Percent > 0;
        key_ = context.stream;
        first_element_ = context.first_sample * input_shape::size;
        apply(x.data(), y.data(), x.size());
    }

    void backward(const tensor<input_shape>&, const tensor<output_shape>&, const tensor<output_shape>& dy,
                  tensor<input_shape>* dx)
    {
        if (!dx)
            return;
        dx->resize(dy.batch());
        apply(dy.data(), dx->data(), dy.size());
    }

private:
    // The forward mask and scale, applied again to gradients in backward.
    void apply(const float* in, float* out, std::size_t n) const
    {
        if (!training_) {
            std::copy(in, in + n, out);
            return;
        }
        const float scale = 1.f / (1.f - probability);
        // About 16 operations an element: a 64-bit hash, a compare and a multiply.
        detail::parallel_ranges(n, 16, [&](std::size_t, std::size_t, detail::range part) {
            for (std::size_t i = part.begin; i < part.end; ++i)
                out[i] = kernels::dropout_keeps(key_, first_element_ + i, probability) ? in[i] * scale : 0.f;
        });
    }

    bool training_ = false;
    std::uint64_t key_ = 0;
    std::size_t first_element_ = 0;
};

} // namespace vgg
