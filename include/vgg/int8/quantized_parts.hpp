#pragma once
// What a quantised network is made of, as quantisation makes it and an int8 file keeps it: the
// fp32 first convolution, and each later layer's s8 weights, fp32 bias and input scale.
#include <cstddef>
#include <utility>
#include <vector>

#include "vgg/int8/layer_ops.hpp"
#include "vgg/kernels/int8/layout.hpp"

namespace vgg::int8 {

/// One int8 layer: its structure, names and fp32 bias in `layer` (whose fp32 weight is not kept),
/// its weights as [out][in x taps] in [-weight_levels, weight_levels] with a scale per output
/// channel, and the scale of its u8 input (the value of one step).
struct int8_layer_parts {
    layer_op layer;
    kernels::int8::quantised_weights weights;
    float input_scale = 1.f;
};

/// A quantised network: the first convolution in fp32 (weights and bias), then its int8 layers.
struct quantized_parts {
    layer_op first;
    std::vector<int8_layer_parts> layers;
};

/// The parts of `ops` (with their fp32 weights) quantised: each later layer's weights per
/// output channel, and its input's scale from the calibrated `thresholds` (one per op; the
/// first's unused).
inline quantized_parts quantise_parts(std::vector<layer_op> ops, const std::vector<float>& thresholds)
{
    quantized_parts parts{std::move(ops.front()), {}};
    for (std::size_t k = 1; k < ops.size(); ++k) {
        layer_op& op = ops[k];
        auto weights = kernels::int8::quantise_weights(op.weight_by_output().data(), op.out, op.weight.size() / op.out);
        op.weight = {};
        parts.layers.push_back({std::move(op), std::move(weights), kernels::int8::activation_scale(thresholds[k])});
    }
    return parts;
}

} // namespace vgg::int8
