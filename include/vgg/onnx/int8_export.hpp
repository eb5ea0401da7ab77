#pragma once
// ONNX export of an int8 network in QDQ form, as ONNX Runtime's quantiser writes models: each
// convolution and Gemm takes its input through QuantizeLinear and DequantizeLinear (u8 per
// tensor), its weight from an int8 initializer through DequantizeLinear (a scale per output
// channel) and its bias from int32 at input scale x weight scale. Engines that know the form run
// those nodes as int8 kernels (QLinearConv); the logits stay fp32.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "vgg/int8/quantized_network.hpp"
#include "vgg/onnx/export.hpp"

namespace vgg::int8 {

namespace detail {

/// A DequantizeLinear node beside the chain: `output` = (inputs[0] - zero point) x scale, a scale
/// per output channel (axis 0).
inline void add_dequantize(::onnx::GraphProto& graph, const std::string& node_name,
                           const std::vector<std::string>& inputs, const std::string& output)
{
    auto& node = *graph.add_node();
    node.set_op_type("DequantizeLinear");
    node.set_name(node_name);
    for (const auto& input : inputs)
        node.add_input(input);
    node.add_output(output);
    io::detail::add_int(node, "axis", 0);
}

/// The value on the chain quantised and dequantised again as `part`'s input quantisation (its
/// initializers, named as in vgg's int8 files: NAME.input_scale, NAME.input_zero_point) says.
inline void write_quantise_dequantise(io::detail::graph_writer& writer, const int8_layer_parts& part,
                                      const std::string& node_prefix)
{
    const std::vector<std::string> parameters{beside(part.layer.parameter, "input_scale"),
                                              beside(part.layer.parameter, "input_zero_point")};
    writer.node("QuantizeLinear", node_prefix + "/QuantizeLinear", parameters);
    writer.node("DequantizeLinear", node_prefix + "/DequantizeLinear", parameters);
}

/// `part`'s input quantisation as initializers: the scale, and the zero point as u8.
inline void add_input_quantisation(::onnx::GraphProto& graph, const int8_layer_parts& part)
{
    const std::uint8_t code = static_cast<std::uint8_t>(part.input.zero_point);
    io::detail::add_float_initializer(graph, beside(part.layer.parameter, "input_scale"), {},
                                      std::span(&part.input.scale, 1));
    io::detail::add_raw_initializer(graph, beside(part.layer.parameter, "input_zero_point"), {},
                                    ::onnx::TensorProto::UINT8, std::span(&code, 1));
}

/// The layer's weight and bias as initializers and DequantizeLinear nodes; returns the names of
/// their fp32 values.
inline std::pair<std::string, std::string> write_parameters(::onnx::GraphProto& graph, const std::string& module,
                                                            const int8_layer_parts& part)
{
    const layer_op& op = part.layer;
    const auto& weights = part.weights;
    const std::vector<std::int8_t> weight_zero_points(op.out, 0);
    std::vector<std::int32_t> bias(op.out);
    std::vector<float> bias_scales(op.out);
    for (std::size_t o = 0; o < op.out; ++o) {
        bias_scales[o] = part.input.scale * weights.scales[o];
        const double code = std::nearbyint(double(op.bias[o]) / bias_scales[o]);
        if (!(std::abs(code) < 2147483647.0))
            throw std::invalid_argument("to_onnx: the bias of " + op.name + " at output " + std::to_string(o) +
                                        " is too large for int32 at its scale (input scale x weight scale)");
        bias[o] = static_cast<std::int32_t>(code);
    }
    const std::string& weight = op.parameter;
    const std::string names[] = {beside(weight, "weight_scale"), beside(weight, "weight_zero_point"),
                                 beside(weight, "bias"), beside(weight, "bias_scale")};
    using io::detail::add_raw_initializer;
    add_raw_initializer(graph, weight, detail::weight_shape(op), ::onnx::TensorProto::INT8,
                        std::span<const std::int8_t>(weights.values));
    add_raw_initializer(graph, names[0], {op.out}, ::onnx::TensorProto::FLOAT, std::span<const float>(weights.scales));
    add_raw_initializer(graph, names[1], {op.out}, ::onnx::TensorProto::INT8,
                        std::span<const std::int8_t>(weight_zero_points));
    add_raw_initializer(graph, names[2], {op.out}, ::onnx::TensorProto::INT32, std::span<const std::int32_t>(bias));
    add_raw_initializer(graph, names[3], {op.out}, ::onnx::TensorProto::FLOAT, std::span<const float>(bias_scales));
    add_dequantize(graph, "/" + module + "/weight/DequantizeLinear", {weight, names[0], names[1]},
                   weight + "_dequantized");
    add_dequantize(graph, "/" + module + "/bias/DequantizeLinear", {names[2], names[3]}, names[2] + "_dequantized");
    return {weight + "_dequantized", names[2] + "_dequantized"};
}

/// The nodes of one int8 layer: its input quantised, the convolution (ReLU, max-pool) or Gemm
/// (ReLU), a Flatten before the first Gemm. A pooled convolution's output is quantised as the next
/// layer's input before the max-pool too (the same codes: the max commutes with quantising), so
/// that an engine finds its Conv followed by a QuantizeLinear and runs them as one int8 node.
inline void write_layer(::onnx::GraphProto& graph, io::detail::graph_writer& writer, const int8_layer_parts& part,
                        const int8_layer_parts* before, const int8_layer_parts* next)
{
    const layer_op& op = part.layer;
    const std::string module = io::detail::module_name(op.parameter);
    if (op.type == layer_op::kind::linear && before && before->layer.type == layer_op::kind::conv)
        io::detail::add_int(writer.node("Flatten", "/" + module + "/Flatten"), "axis", 1);
    add_input_quantisation(graph, part);
    write_quantise_dequantise(writer, part, "/" + module + "/input");
    const auto [weight, bias] = write_parameters(graph, module, part);
    if (op.type == layer_op::kind::conv)
        io::detail::write_conv3x3_node(writer, "/" + module + "/Conv", weight, bias);
    else
        io::detail::add_int(writer.node("Gemm", "/" + module + "/Gemm", {weight, bias}), "transB", 1);
    if (op.relu)
        writer.node("Relu", "/" + module + "/Relu");
    if (op.pool) {
        if (next)
            write_quantise_dequantise(writer, *next, "/" + module + "/output");
        io::detail::write_max_pool_node(writer, "/" + module + "/MaxPool");
    }
}

} // namespace detail

/// The int8 network as an ONNX model in QDQ form (see above): the input [batch, C, H, W] fp32 with
/// a symbolic batch, the output [batch, classes] fp32. options.batch_norm does not apply (batch
/// norm is folded into the int8 weights). Throws std::invalid_argument for an opset out of range
/// or a bias that int32 cannot hold at its scale.
template <class Net>
::onnx::ModelProto to_onnx(const quantized_network<Net>& network, const io::onnx_export_options& options = {})
{
    ::onnx::ModelProto model = io::detail::new_model(options);
    auto& graph = *model.mutable_graph();
    io::detail::declare_input<typename Net::input_shape>(graph, options);
    io::detail::graph_writer writer(graph, options.input_name);
    const auto& parts = network.parts();
    for (std::size_t k = 0; k < parts.size(); ++k)
        detail::write_layer(graph, writer, parts[k], k > 0 ? &parts[k - 1] : nullptr,
                            k + 1 < parts.size() ? &parts[k + 1] : nullptr);
    io::detail::declare_output<typename Net::output_shape>(graph, writer, options);
    io::detail::check_made_model(model);
    return model;
}

/// Saves the int8 network as an ONNX QDQ model (see to_onnx), atomically: a failure leaves any
/// earlier file as it was.
template <class Net>
void save_onnx(const quantized_network<Net>& network, const std::filesystem::path& path,
               const io::onnx_export_options& options = {})
{
    io::detail::save_model(path, [&] { return to_onnx(network, options); });
}

} // namespace vgg::int8
