#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "vgg/core/layer.hpp"
#include "vgg/core/parameter.hpp"
#include "vgg/core/rules.hpp"
#include "vgg/core/tensor.hpp"
#include "vgg/kernels/batchnorm.hpp"

namespace vgg {

template <std::size_t Channels, class InputShape>
class batchnorm2d_layer;

/// nn.BatchNorm2d(Channels) with PyTorch's defaults (eps 1e-5, momentum 0.1, affine, running
/// statistics). In training it normalises by the batch's mean and biased variance and moves the
/// running mean and unbiased variance towards them; in evaluation it uses the running ones.
/// shape<Channels, H, W> to the same shape.
template <std::size_t Channels>
struct BatchNorm2d {
    template <class S>
    using output_shape = S;
    template <class S>
    using layer = batchnorm2d_layer<Channels, S>;
};

template <std::size_t Channels, class InputShape>
class batchnorm2d_layer {
    static_assert(
        rules::image_input_v<InputShape>,
        "BatchNorm2d needs an image input, shape<Channels, Height, Width>: it cannot follow Flatten or Linear.");
    static_assert(rules::in_channels_match_v<Channels, image_dims<InputShape>::channels>,
                  "BatchNorm2d<Channels>: Channels must equal the channel count of its input.");
    static constexpr std::size_t plane = image_dims<InputShape>::height * image_dims<InputShape>::width;

public:
    static constexpr std::string_view name = "BatchNorm2d";
    using input_shape = InputShape;
    using output_shape = InputShape;
    static constexpr std::size_t parameter_count =
        2 * Channels; ///< weight and bias; the running statistics are buffers
    static constexpr float eps = 1e-5f, momentum = 0.1f;

    batchnorm2d_layer() { std::fill(weight.value.begin(), weight.value.end(), 1.f); }

    /// PyTorch's reset: weight 1, bias 0, running mean 0, running variance 1.
    void initialize(weight_init, rng&)
    {
        std::fill(weight.value.begin(), weight.value.end(), 1.f);
        std::fill(bias.value.begin(), bias.value.end(), 0.f);
        std::fill(running_mean.value.begin(), running_mean.value.end(), 0.f);
        std::fill(running_var.value.begin(), running_var.value.end(), 1.f);
    }

    /// In training mode a batch of one image of one pixel has no variance to normalise by: an
    /// error (std::invalid_argument), as in PyTorch.
    void forward(const tensor<input_shape>& x, tensor<output_shape>& y, const run_context& context)
    {
        const kernels::batchnorm_dims d{x.batch(), Channels, plane};
        batch_statistics_ = context.mode == mode::train;
        if (batch_statistics_) {
            if (d.count() < 2)
                throw std::invalid_argument(
                    "BatchNorm2d: training needs more than one value per channel, got a batch of " +
                    std::to_string(x.batch()) + " with " + std::to_string(plane) + " pixels per channel");
            std::vector<float> variance(Channels);
            kernels::batchnorm_statistics(d, x.data(), mean_.data(), variance.data());
            const float unbiased = float(d.count()) / float(d.count() - 1);
            for (std::size_t c = 0; c < Channels; ++c) {
                inv_std_[c] = 1.f / std::sqrt(variance[c] + eps);
                running_mean.value[c] = (1.f - momentum) * running_mean.value[c] + momentum * mean_[c];
                running_var.value[c] = (1.f - momentum) * running_var.value[c] + momentum * variance[c] * unbiased;
            }
        } else {
            normalisation_from_running_statistics(mean_.data(), inv_std_.data());
        }
        std::array<float, Channels> scale;
        for (std::size_t c = 0; c < Channels; ++c)
            scale[c] = weight.value[c] * inv_std_[c];
        y.resize(x.batch());
        kernels::batchnorm_apply(d, x.data(), mean_.data(), scale.data(), bias.value.data(), y.data());
    }

    void backward(const tensor<input_shape>& x, const tensor<output_shape>&, const tensor<output_shape>& dy,
                  tensor<input_shape>* dx, parameter_gradients gradients = parameter_gradients::compute)
    {
        if (dx)
            dx->resize(x.batch());
        const bool own = gradients == parameter_gradients::compute;
        kernels::batchnorm_backward({x.batch(), Channels, plane}, x.data(), dy.data(), mean_.data(), inv_std_.data(),
                                    weight.value.data(), batch_statistics_, own ? weight.grad.data() : nullptr,
                                    own ? bias.grad.data() : nullptr, dx ? dx->data() : nullptr);
    }

    /// The evaluation-mode mean and 1 / sqrt(running variance + eps) per channel, which a
    /// convolution before this layer can fold into its weights and bias.
    void normalisation_from_running_statistics(float* mean, float* inv_std) const
    {
        for (std::size_t c = 0; c < Channels; ++c) {
            mean[c] = running_mean.value[c];
            inv_std[c] = 1.f / std::sqrt(running_var.value[c] + eps);
        }
    }

    /// weight, bias, running_mean and running_var, as PyTorch's state_dict names them (its
    /// num_batches_tracked counter only matters with momentum=None, which this layer does not offer).
    template <class Visitor>
    void visit_parameters(const std::string& prefix, Visitor&& visit)
    {
        visit(weight.view(prefix + "weight"));
        visit(bias.view(prefix + "bias"));
        visit(running_mean.view(prefix + "running_mean"));
        visit(running_var.view(prefix + "running_var"));
    }

    parameter weight{Channels};
    parameter bias{Channels};
    buffer running_mean{Channels, 0.f};
    buffer running_var{Channels, 1.f};

private:
    // The statistics the last forward pass normalised with, which its backward pass needs.
    std::array<float, Channels> mean_{}, inv_std_{};
    bool batch_statistics_ = false;
};

} // namespace vgg
