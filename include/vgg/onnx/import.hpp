#pragma once
// ONNX import: a model's graph walked node by node against a compile-time network, its
// initializers checked for shape and loaded under the network's parameter names. Accepts what
// exporters write (torch.onnx.export with or without constant folding, the ONNX model zoo's VGGs):
// batch norm as nodes or folded into the convolutions, Flatten or a Reshape (with its
// Shape/Gather/Concat chain), Gemm or MatMul + Add, Dropout and Identity.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <onnx/onnx_pb.h>

#include "vgg/io/error.hpp"
#include "vgg/io/read_file.hpp"
#include "vgg/io/safetensors.hpp"
#include "vgg/onnx/export.hpp"
#include "vgg/onnx/graph_reader.hpp"
#include "vgg/onnx/layer_ops.hpp"

namespace vgg::io {

/// What load_onnx found.
struct onnx_import_report {
    std::int64_t opset = 0;
    std::string producer;
    std::size_t nodes = 0;
    /// Batch norm came folded into the convolutions: the network's batch norms were set to the identity.
    bool batch_norm_folded = false;
    /// The model's metadata_props.
    std::map<std::string, std::string> metadata;
};

/// An ONNX model parsed from `bytes` (read from `path`, which errors name).
inline ::onnx::ModelProto parse_onnx(std::string_view bytes, const std::filesystem::path& path)
{
    ::onnx::ModelProto model;
    if (bytes.size() > std::size_t(std::numeric_limits<int>::max()) ||
        !model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
        throw file_error(path, "is not an ONNX model: it does not parse as one (truncated, or a file of another kind)");
    return model;
}

/// A quantised model's first QuantizeLinear, DequantizeLinear or QLinear node; null in an fp32 model.
inline const ::onnx::NodeProto* quantised_node(const ::onnx::ModelProto& model)
{
    for (const auto& node : model.graph().node())
        if (node.op_type() == "QuantizeLinear" || node.op_type() == "DequantizeLinear" ||
            node.op_type().starts_with("QLinear"))
            return &node;
    return nullptr;
}

namespace detail {

/// Checks that the graph's input is a FLOAT batch of Net's images.
template <class Net>
void check_graph_input(const ::onnx::ValueInfoProto& input, const std::filesystem::path& path)
{
    static_assert(is_image_shape_v<typename Net::input_shape>, "ONNX import needs a network with an image input.");
    using dims_of = image_dims<typename Net::input_shape>;
    const std::vector<std::int64_t> expected{-1, std::int64_t(dims_of::channels), std::int64_t(dims_of::height),
                                             std::int64_t(dims_of::width)};
    const auto& type = input.type();
    if (!type.has_tensor_type() || type.tensor_type().elem_type() != ::onnx::TensorProto::FLOAT)
        throw file_error(path, "graph input \"" + input.name() + "\" is not a FLOAT tensor");
    if (!type.tensor_type().has_shape())
        return;
    const auto& dims = type.tensor_type().shape().dim();
    std::vector<std::int64_t> found;
    bool differs = dims.size() != 4;
    for (int i = 0; i < dims.size(); ++i) {
        found.push_back(dims[i].has_dim_value() ? dims[i].dim_value() : -1);
        differs =
            differs || (i > 0 && i < 4 && dims[i].has_dim_value() && dims[i].dim_value() != expected[std::size_t(i)]);
    }
    if (differs)
        throw file_error(path, "graph input \"" + input.name() + "\" has shape " + ints_text(found) +
                                   ", but the network takes [batch, " + std::to_string(dims_of::channels) + ", " +
                                   std::to_string(dims_of::height) + ", " + std::to_string(dims_of::width) + "]");
}

/// Matches the steps of a graph to the network's operations and gathers its parameters' values
/// under the network's names.
class onnx_matcher {
public:
    onnx_matcher(const std::vector<layer_op>& ops, const std::vector<onnx_step>& steps,
                 const std::filesystem::path& path)
        : ops_(ops), steps_(steps), path_(path)
    {}

    safetensors_content match(bool& batch_norm_folded)
    {
        std::size_t s = 0;
        for (std::size_t k = 0; k < ops_.size(); ++k) {
            const auto& op = ops_[k];
            const onnx_step* step = s < steps_.size() ? &steps_[s] : nullptr;
            auto need = [&](onnx_step_kind kind, const char* what) {
                if (!step)
                    throw file_error(path_, "ends before " + op.where + ", which needs " + what);
                if (step->kind != kind)
                    throw file_error(path_,
                                     step->label + " is where the network has " + op.where + ", which needs " + what);
                ++s;
            };
            switch (op.kind) {
            case layer_op_kind::dropout: break;
            case layer_op_kind::conv: {
                need(onnx_step_kind::conv, "a Conv");
                put_conv(op, *step);
                break;
            }
            case layer_op_kind::batch_norm:
                if (step && step->kind == onnx_step_kind::batch_norm) {
                    ++s;
                    put_batch_norm(op, *step);
                } else if (k > 0 && ops_[k - 1].kind == layer_op_kind::conv) {
                    batch_norm_folded = true;
                    put_identity_batch_norm(op);
                } else {
                    need(onnx_step_kind::batch_norm, "a BatchNormalization");
                }
                break;
            case layer_op_kind::relu: need(onnx_step_kind::relu, "a Relu"); break;
            case layer_op_kind::max_pool: need(onnx_step_kind::max_pool, "a MaxPool"); break;
            case layer_op_kind::adaptive_avg_pool: s += adaptive_pool(op, step); break;
            case layer_op_kind::flatten:
                need(onnx_step_kind::flatten, "a Flatten or a Reshape to [batch, features]");
                break;
            case layer_op_kind::linear: {
                need(onnx_step_kind::linear, "a Gemm or a MatMul");
                put_linear(op, *step);
                break;
            }
            }
        }
        if (s < steps_.size())
            throw file_error(path_, steps_[s].label + " follows the network's last layer (" + ops_.back().where + ")");
        return std::move(content_);
    }

private:
    /// A convolution's weight and bias (zero when the file has none) from a Conv.
    void put_conv(const layer_op& op, const onnx_step& step)
    {
        const auto& weight = *step.tensors[0];
        const std::vector<std::int64_t> expected{std::int64_t(op.out_channels), std::int64_t(op.in_channels), 3, 3};
        if (weight.dims.size() == 4 && weight.dims[0] != expected[0])
            throw file_error(path_, step.label + " has " + std::to_string(weight.dims[0]) + " output channels, but " +
                                        op.where + " has " + std::to_string(op.out_channels));
        check_dims(step, weight, expected, op, "weight");
        put(op.parameters[0], weight.floats);
        if (step.tensors.size() > 1) {
            check_dims(step, *step.tensors[1], {expected[0]}, op, "bias");
            put(op.parameters[1], step.tensors[1]->floats);
        } else {
            put(op.parameters[1], std::vector<float>(op.out_channels, 0.f));
        }
    }

    /// A batch norm's scales and statistics from a BatchNormalization.
    void put_batch_norm(const layer_op& op, const onnx_step& step)
    {
        for (std::size_t i = 0; i < 4; ++i) {
            check_dims(step, *step.tensors[i], {std::int64_t(op.in_channels)}, op, "statistics and scales");
            put(op.parameters[i], step.tensors[i]->floats);
        }
        if (std::abs(step.epsilon - op.epsilon) > 1e-3f * op.epsilon)
            throw file_error(path_, step.label + " has epsilon " + std::to_string(step.epsilon) + ", but " + op.where +
                                        " has " + std::to_string(op.epsilon));
    }

    /// A batch norm the file folded into the convolution before it: the identity.
    void put_identity_batch_norm(const layer_op& op)
    {
        put(op.parameters[0], std::vector<float>(op.in_channels, 1.f));
        put(op.parameters[1], std::vector<float>(op.in_channels, 0.f));
        put(op.parameters[2], std::vector<float>(op.in_channels, 0.f));
        put(op.parameters[3], std::vector<float>(op.in_channels, 1.f - op.epsilon));
    }

    /// A Linear's weight (stored transposed where the file has it [in, out]) and bias from a Gemm
    /// or MatMul (+ Add).
    void put_linear(const layer_op& op, const onnx_step& step)
    {
        const auto& weight = *step.tensors[0];
        const auto out = std::int64_t(op.out_channels), in = std::int64_t(op.in_channels);
        if (weight.dims.size() == 2) {
            const auto file_in = step.transposed_b ? weight.dims[1] : weight.dims[0];
            const auto file_out = step.transposed_b ? weight.dims[0] : weight.dims[1];
            if (file_in != in)
                throw file_error(path_, step.label + " has " + std::to_string(file_in) + " input features, but " +
                                            op.where + " has " + std::to_string(in));
            if (file_out != out)
                throw file_error(path_, step.label + " has " + std::to_string(file_out) + " output features, but " +
                                            op.where + " has " + std::to_string(out));
        }
        check_dims(step, weight,
                   step.transposed_b ? std::vector<std::int64_t>{out, in} : std::vector<std::int64_t>{in, out}, op,
                   "weight");
        if (step.transposed_b) {
            put(op.parameters[0], weight.floats);
        } else {
            std::vector<float> transposed(weight.floats.size());
            for (std::int64_t i = 0; i < in; ++i)
                for (std::int64_t o = 0; o < out; ++o)
                    transposed[std::size_t(o * in + i)] = weight.floats[std::size_t(i * out + o)];
            put(op.parameters[0], transposed);
        }
        if (step.tensors.size() > 1) {
            const auto& bias = *step.tensors[1];
            if (bias.dims.size() == 2 && bias.dims[0] == 1)
                check_dims(step, bias, {1, out}, op, "bias");
            else
                check_dims(step, bias, {out}, op, "bias");
            put(op.parameters[1], bias.floats);
        } else {
            put(op.parameters[1], std::vector<float>(op.out_channels, 0.f));
        }
    }

    void check_dims(const onnx_step& step, const onnx_tensor& tensor, const std::vector<std::int64_t>& expected,
                    const layer_op& op, const char* what) const
    {
        if (!tensor.is_float)
            throw file_error(path_, step.label + " has an " + ::onnx::TensorProto_DataType_Name(tensor.type) + " " +
                                        what + "; weights must be FLOAT");
        if (tensor.dims != expected)
            throw file_error(path_, step.label + " has a " + what + " of shape " + ints_text(tensor.dims) + ", but " +
                                        op.where + " needs " + ints_text(expected));
    }

    void put(const parameter_view& p, const std::vector<float>& values)
    {
        content_.tensors[p.name] = {p.shape, values, "F32", {}};
    }

    // AdaptiveAvgPool2d: nothing (when it is the identity), AveragePool with its window, GlobalAveragePool
    // (to 1x1), or vgg's own pooling matrix. Returns how many steps it took.
    std::size_t adaptive_pool(const layer_op& op, const onnx_step* step) const
    {
        const bool identity = op.in_height == op.out_height && op.in_width == op.out_width;
        const std::string sizes = std::to_string(op.in_height) + "x" + std::to_string(op.in_width) + " to " +
                                  std::to_string(op.out_height) + "x" + std::to_string(op.out_width);
        if (!step || step->kind == onnx_step_kind::flatten) {
            if (identity)
                return 0;
            throw file_error(path_, (step ? step->label + " is where the network has " : "ends before ") + op.where +
                                        ", which pools " + sizes);
        }
        if (step->kind == onnx_step_kind::global_average_pool && op.out_height == 1 && op.out_width == 1)
            return 1;
        if (step->kind == onnx_step_kind::average_pool && op.in_height % op.out_height == 0 &&
            op.in_width % op.out_width == 0) {
            const std::vector<std::int64_t> window{std::int64_t(op.in_height / op.out_height),
                                                   std::int64_t(op.in_width / op.out_width)};
            if (step->kernel == window)
                return 1;
            throw file_error(path_, step->label + " pools with kernel " + ints_text(step->kernel) + ", but " +
                                        op.where + " pools " + sizes + ", a window of " + ints_text(window));
        }
        if (step->kind == onnx_step_kind::pool_matrix) {
            const auto expected = adaptive_pool_matrix(op.in_height, op.in_width, op.out_height, op.out_width);
            const auto& matrix = *step->tensors[0];
            const bool same = matrix.is_float && matrix.floats.size() == expected.size() &&
                              std::equal(expected.begin(), expected.end(), matrix.floats.begin(),
                                         [](float a, float b) { return std::abs(a - b) <= 1e-6f; });
            if (same)
                return 1;
            throw file_error(path_, step->label + " multiplies by a matrix that is not " + op.where +
                                        "'s pooling from " + sizes);
        }
        if (identity && step->kind == onnx_step_kind::average_pool && step->kernel == std::vector<std::int64_t>{1, 1})
            return 1;
        throw file_error(path_, step->label + " is where the network has " + op.where + ", which pools " + sizes);
    }

    const std::vector<layer_op>& ops_;
    const std::vector<onnx_step>& steps_;
    std::filesystem::path path_;
    safetensors_content content_;
};

} // namespace detail

/// Loads an ONNX model into `net` (`model`, read from `path`): the graph must be the network's,
/// node by node, and every initializer its parameter's shape; any difference is a file_error
/// naming the node, its op and shapes, and the layer. Nothing changes unless all of it checks
/// out. Batch norm folded into the convolutions sets the network's batch norms to the identity.
/// A quantised model is refused: int8::load_onnx reads it.
template <class Net>
onnx_import_report load_onnx(Net& net, const ::onnx::ModelProto& model, const std::filesystem::path& path)
{
    static_assert(is_image_shape_v<typename Net::input_shape>,
                  "load_onnx(net, ...) needs a network with an image input.");
    if (const auto* node = quantised_node(model))
        throw file_error(path, "is a quantised model (its node \"" + node->name() + "\" is " + node->op_type() +
                                   "); read it as an int8 network (vgg::int8::load_onnx, --precision int8)");
    const detail::onnx_graph_reader graph(model, path);
    detail::check_graph_input<Net>(graph.input(), path);
    onnx_import_report report;
    report.opset = graph.opset();
    report.producer = model.producer_name() + (model.producer_version().empty() ? "" : " " + model.producer_version());
    report.nodes = std::size_t(model.graph().node_size());
    for (const auto& entry : model.metadata_props())
        report.metadata[entry.key()] = entry.value();
    const auto ops = ops_with_parameters(net);
    const auto content = detail::onnx_matcher(ops, graph.steps(), path).match(report.batch_norm_folded);
    load_weights(net, content, path);
    return report;
}

/// Loads an ONNX model held in `bytes` (read from `path`) into `net` (see above).
template <class Net>
onnx_import_report load_onnx(Net& net, std::string_view bytes, const std::filesystem::path& path)
{
    return load_onnx(net, parse_onnx(bytes, path), path);
}

/// Reads an ONNX file and loads it into `net` (see above).
template <class Net>
onnx_import_report load_onnx(Net& net, const std::filesystem::path& path)
{
    const auto bytes = read_file_bytes(path);
    return load_onnx(net, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), path);
}

} // namespace vgg::io
