#pragma once
// What a quantised network is made of, as quantisation makes it and an int8 file keeps it: each
// layer's s8 weights, fp32 bias and input quantisation.
#include <cstddef>
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

} // namespace vgg::int8
