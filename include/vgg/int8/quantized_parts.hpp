#pragma once
// What a quantised network is made of, as quantisation makes it and an int8 file keeps it: each
// layer's s8 weights, fp32 bias and input quantisation.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "vgg/int8/layer_ops.hpp"
#include "vgg/kernels/int8/layout.hpp"

namespace vgg::int8 {

/// One int8 layer: its structure, names and fp32 bias in `layer` (whose fp32 weight is not kept),
/// its weights as [out][in x taps] in [-weight_levels, weight_levels] with a scale per output
/// channel, and how its input is quantised: the value of one u8 step, and the code of 0 (the
/// image's, for the first layer; 0 after a ReLU).
struct int8_layer_parts {
    layer_op layer;
    kernels::int8::quantised_weights weights;
    kernels::int8::input_quantisation input;
};

/// The layers of `ops` (with their fp32 weights) quantised: weights per output channel; the first
/// layer's input as `image` says, each later one's from zero to its calibrated threshold (one per
/// op; the first's unused).
inline std::vector<int8_layer_parts> quantise_parts(std::vector<layer_op> ops,
                                                    const kernels::int8::input_quantisation& image,
                                                    const std::vector<float>& thresholds)
{
    std::vector<int8_layer_parts> parts;
    for (std::size_t k = 0; k < ops.size(); ++k) {
        layer_op& op = ops[k];
        auto weights = kernels::int8::quantise_weights(op.weight_by_output().data(), op.out, op.weight.size() / op.out);
        op.weight = {};
        const kernels::int8::input_quantisation input =
            k == 0 ? image : kernels::int8::input_quantisation{kernels::int8::activation_scale(thresholds[k]), 0};
        parts.push_back({std::move(op), std::move(weights), input});
    }
    return parts;
}

/// Throws std::invalid_argument unless `parts` are layers of `structure` (layer_structure<Net>()):
/// the same kinds and sizes in order, as many weights, scales and biases as each needs, weights
/// within weight_code_limit, scales above zero, zero points in [0, 255] for the image and 0 after.
inline void check_parts(const std::vector<layer_op>& structure, const std::vector<int8_layer_parts>& parts)
{
    const auto refuse = [](const std::string& why) { throw std::invalid_argument("int8 network: " + why); };
    if (parts.size() != structure.size())
        refuse(std::to_string(parts.size()) + " layers given, the network has " + std::to_string(structure.size()));
    for (std::size_t k = 0; k < parts.size(); ++k) {
        const layer_op &want = structure[k], &have = parts[k].layer;
        const auto& weights = parts[k].weights;
        const std::size_t per_channel = want.in * (want.type == layer_op::kind::conv ? 9 : 1);
        const auto positive = [](float v) { return std::isfinite(v) && v > 0.f; };
        const auto in_range = [](std::int8_t w) { return std::abs(int(w)) <= kernels::int8::weight_code_limit; };
        const int zero_point = parts[k].input.zero_point;
        const bool fits = have.type == want.type && have.in == want.in && have.out == want.out &&
                          have.height == want.height && have.width == want.width && have.relu == want.relu &&
                          have.pool == want.pool && have.bias.size() == want.out &&
                          weights.values.size() == want.out * per_channel && weights.scales.size() == want.out;
        if (!fits)
            refuse(want.name + ": the layer given differs from the network's in kind, size or count of values");
        if (!std::all_of(weights.values.begin(), weights.values.end(), in_range) ||
            !std::all_of(weights.scales.begin(), weights.scales.end(), positive) || !positive(parts[k].input.scale) ||
            zero_point < 0 || zero_point > (k == 0 ? kernels::int8::activation_levels : 0))
            refuse(want.name + ": a weight beyond weight_code_limit, a scale not above zero or a zero point out of "
                               "range (0 to 255 for the image, 0 after)");
    }
}

} // namespace vgg::int8
