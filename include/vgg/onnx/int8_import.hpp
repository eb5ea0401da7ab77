#pragma once
// ONNX import of an int8 network in QDQ form: what int8_export.hpp writes, and what ONNX Runtime's
// quantiser writes for a VGG (per-channel or per-tensor s8 weights within weight_code_limit, as
// its reduce_range gives; u8 or s8 activations per tensor; a Relu it removed because the u8
// quantisation after it clamps at zero). Every Conv and Gemm takes its input through
// QuantizeLinear + DequantizeLinear and its weight through DequantizeLinear of INT8 codes; its
// bias may be fp32 or dequantised INT32. A quantisation of the logits is passed by: they stay fp32.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <onnx/onnx_pb.h>

#include "vgg/int8/quantized_network.hpp"
#include "vgg/io/read_file.hpp"
#include "vgg/onnx/graph_reader.hpp"
#include "vgg/onnx/import.hpp"

namespace vgg::int8 {

namespace detail {

/// Matches a QDQ graph's steps to the int8 layers of a network (layer_structure<Net>()).
class qdq_matcher {
public:
    using step = io::detail::onnx_step;
    using step_kind = io::detail::onnx_step_kind;

    qdq_matcher(std::vector<layer_op> structure, const std::vector<step>& steps, const std::filesystem::path& path)
        : structure_(std::move(structure)), steps_(steps), path_(path)
    {}

    std::vector<int8_layer_parts> match()
    {
        std::vector<int8_layer_parts> parts;
        for (std::size_t k = 0; k < structure_.size(); ++k) {
            layer_op op = structure_[k];
            const bool flattens =
                op.type == layer_op::kind::linear && k > 0 && structure_[k - 1].type == layer_op::kind::conv;
            bool flattened = false;
            for (;; ++s_) {
                if (flattens && !flattened && at(step_kind::flatten))
                    flattened = true;
                else if (flattens && !flattened && at(step_kind::average_pool) &&
                         steps_[s_].kernel == std::vector<std::int64_t>{1, 1})
                    continue; // torch's AdaptiveAvgPool2d where it keeps the size
                else if (!note_quantisation())
                    break;
            }
            if (flattens && !flattened)
                need(step_kind::flatten, op, "a Flatten or a Reshape to [batch, features]");
            const step& product = need(op.type == layer_op::kind::conv ? step_kind::conv : step_kind::linear, op,
                                       op.type == layer_op::kind::conv ? "a Conv" : "a Gemm or a MatMul");
            parts.push_back(layer_parts(std::move(op), product, k));
            pending_.reset();
            finish_layer(parts.back().layer);
        }
        for (; s_ < steps_.size(); ++s_) // the logits' quantisation: vgg keeps them fp32
            if (steps_[s_].kind != step_kind::quantise)
                throw io::file_error(path_, steps_[s_].label + " follows the network's last layer (" +
                                                structure_.back().name + ")");
        return parts;
    }

private:
    bool at(step_kind kind) const { return s_ < steps_.size() && steps_[s_].kind == kind; }

    const step& need(step_kind kind, const layer_op& op, const std::string& what)
    {
        if (!at(kind))
            throw io::file_error(path_, (s_ < steps_.size() ? steps_[s_].label + " is where the network has "
                                                            : std::string("ends before ")) +
                                            op.name + ", which needs " + what);
        return steps_[s_++];
    }

    /// The step at s_, when it is a quantise step, as the input quantisation of the next layer
    /// (in u8: an s8 code is its u8 code less 128); returns whether it was one.
    bool note_quantisation()
    {
        if (!at(step_kind::quantise))
            return false;
        const step& q = steps_[s_];
        const float scale = q.tensors[0]->floats[0];
        const bool signed_codes = q.tensors[1]->type == ::onnx::TensorProto::INT8;
        if (!signed_codes && q.tensors[1]->type != ::onnx::TensorProto::UINT8)
            throw io::file_error(path_, q.label + " quantises to " +
                                            ::onnx::TensorProto_DataType_Name(q.tensors[1]->type) +
                                            "; vgg's int8 activations are UINT8 or INT8");
        if (!(std::isfinite(scale) && scale > 0.f))
            throw io::file_error(path_, q.label + " has scale " + std::to_string(scale) + "; a scale is above zero");
        const kernels::int8::input_quantisation input{scale, int(q.tensors[1]->integers[0]) + (signed_codes ? 128 : 0)};
        if (pending_ && (pending_->scale != input.scale || pending_->zero_point != input.zero_point))
            throw io::file_error(path_, q.label + " quantises the activation again, with another scale or zero "
                                                  "point; vgg's int8 layers quantise it once between layers");
        pending_ = input;
        return true;
    }

    /// After a layer's Conv or Gemm: its ReLU (a Relu, or a quantisation to u8 from zero, which
    /// clamps as one), its max-pool, and the next layer's input quantisation, in any order.
    void finish_layer(const layer_op& op)
    {
        bool relu = false, pooled = false;
        for (;; ++s_) {
            if (at(step_kind::relu) && op.relu && !relu)
                relu = true;
            else if (at(step_kind::max_pool) && op.pool && !pooled)
                pooled = true;
            else if (note_quantisation())
                relu = relu || (op.relu && pending_->zero_point == 0);
            else
                break;
        }
        if (op.relu && !relu)
            need(step_kind::relu, op, "a Relu (or a quantisation to UINT8 from zero after it)");
        if (op.pool && !pooled)
            need(step_kind::max_pool, op, "a MaxPool");
    }

    int8_layer_parts layer_parts(layer_op op, const step& product, std::size_t k) const
    {
        if (!pending_)
            throw io::file_error(path_, product.label +
                                            " takes its input unquantised; vgg's int8 layers need a "
                                            "QuantizeLinear and DequantizeLinear before each Conv and Gemm");
        if (k > 0 && pending_->zero_point != 0)
            throw io::file_error(path_, product.label + " takes its input with zero point " +
                                            std::to_string(pending_->zero_point) +
                                            " (as UINT8); vgg's int8 layers "
                                            "after the first take u8 from zero, what a ReLU gives");
        int8_layer_parts part;
        part.input = *pending_;
        part.weights = weights(op, product);
        op.parameter = product.tensors[0]->dequantised->codes_name;
        op.bias.assign(op.out, 0.f);
        if (product.tensors.size() > 1) {
            const auto& bias = product.tensors[1]->floats;
            if (bias.size() != op.out)
                throw io::file_error(path_, product.label + " has " + std::to_string(bias.size()) + " biases, but " +
                                                op.name + " has " + std::to_string(op.out) + " outputs");
            op.bias.assign(bias.begin(), bias.end());
        }
        part.layer = std::move(op);
        return part;
    }

    /// The layer's s8 weights [out][in x taps] and a scale per output channel, from the codes of
    /// the DequantizeLinear that gives the Conv's or Gemm's weight.
    kernels::int8::quantised_weights weights(const layer_op& op, const step& product) const
    {
        const io::detail::onnx_tensor& weight = *product.tensors[0];
        if (!weight.dequantised || weight.dequantised->codes->type != ::onnx::TensorProto::INT8)
            throw io::file_error(path_, product.label + " takes an fp32 weight, or one not dequantised from INT8; "
                                                        "vgg's int8 layers take s8 weights");
        const auto& q = *weight.dequantised;
        const bool conv = op.type == layer_op::kind::conv, by_row = conv || product.transposed_b;
        const std::vector<std::int64_t> expected =
            conv     ? std::vector<std::int64_t>{std::int64_t(op.out), std::int64_t(op.in), 3, 3}
            : by_row ? std::vector<std::int64_t>{std::int64_t(op.out), std::int64_t(op.in)}
                     : std::vector<std::int64_t>{std::int64_t(op.in), std::int64_t(op.out)};
        if (weight.dims != expected)
            throw io::file_error(path_, product.label + " has a weight of shape " + io::detail::ints_text(weight.dims) +
                                            ", but " + op.name + " needs " + io::detail::ints_text(expected));
        const std::int64_t output_axis = by_row ? 0 : 1;
        if (q.scales.size() != 1 && (q.scales.size() != op.out || q.axis != output_axis))
            throw io::file_error(path_, product.label + " scales its weight along axis " + std::to_string(q.axis) +
                                            "; vgg's int8 weights have one scale, or one per output channel (axis " +
                                            std::to_string(output_axis) + ")");
        for (std::size_t i = 0; i < q.scales.size(); ++i)
            if (q.zero_points[i] != 0 || !(std::isfinite(q.scales[i]) && q.scales[i] > 0.f))
                throw io::file_error(path_, product.label + " dequantises its weight with zero point " +
                                                std::to_string(q.zero_points[i]) + " and scale " +
                                                std::to_string(q.scales[i]) +
                                                "; vgg's int8 weights are symmetric: zero point 0, a scale above 0");
        const std::size_t per_channel = q.codes->integers.size() / op.out;
        kernels::int8::quantised_weights w{std::vector<std::int8_t>(q.codes->integers.size()),
                                           std::vector<float>(op.out)};
        for (std::size_t i = 0; i < w.values.size(); ++i) {
            const std::int64_t code = q.codes->integers[i];
            if (std::abs(code) > kernels::int8::weight_code_limit)
                throw io::file_error(path_, "initializer \"" + q.codes_name + "\" holds " + std::to_string(code) +
                                                " at index " + std::to_string(i) + ": " + weight_range_text() +
                                                "; ONNX Runtime's quantiser writes such weights with reduce_range");
            const std::size_t o = by_row ? i / per_channel : i % op.out, j = by_row ? i % per_channel : i / op.out;
            w.values[o * per_channel + j] = static_cast<std::int8_t>(code);
        }
        for (std::size_t o = 0; o < op.out; ++o)
            w.scales[o] = q.scales[q.scales.size() == 1 ? 0 : o];
        return w;
    }

    std::vector<layer_op> structure_;
    const std::vector<step>& steps_;
    std::filesystem::path path_;
    std::size_t s_ = 0;
    std::optional<kernels::int8::input_quantisation> pending_;
};

} // namespace detail

/// The int8 network of an ONNX model in QDQ form (see above; `model` read from `path`): the graph
/// must be Net's, layer by layer. Any difference, or a quantisation vgg's kernels cannot run, is
/// an io::file_error naming the node and the layer.
template <class Net>
quantized_network<Net> load_onnx(const ::onnx::ModelProto& model, const std::filesystem::path& path,
                                 kernels::int8_kernel kernel = kernels::best_int8_kernel())
{
    if (!io::quantised_node(model))
        throw io::file_error(path, "is an fp32 model (it has no QuantizeLinear or DequantizeLinear): load it into "
                                   "the fp32 network (io::load_onnx) and quantise that");
    const io::detail::onnx_graph_reader graph(model, path);
    io::detail::check_graph_input<Net>(graph.input(), path);
    return quantized_network<Net>(detail::qdq_matcher(layer_structure<Net>(), graph.steps(), path).match(), kernel);
}

/// Reads an int8 network from an ONNX file in QDQ form (see above).
template <class Net>
quantized_network<Net> load_onnx(const std::filesystem::path& path,
                                 kernels::int8_kernel kernel = kernels::best_int8_kernel())
{
    const auto bytes = io::read_file_bytes(path);
    return load_onnx<Net>(
        io::parse_onnx(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), path), path,
        kernel);
}

} // namespace vgg::int8
