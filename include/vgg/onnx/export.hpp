#pragma once
// ONNX export: a network as an inference model (opset 13-17, a dynamic batch dimension,
// initializers under the network's parameter names), checked by ONNX's own checker.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

// ONNX's parser.h names an enumerator MAP_TYPE, which <sys/mman.h> (vgg/core/large_pages.hpp)
// defines as a macro.
#pragma push_macro("MAP_TYPE")
#undef MAP_TYPE
#include <onnx/checker.h>
#pragma pop_macro("MAP_TYPE")
#include <onnx/onnx_pb.h>

#include "vgg/io/atomic_file.hpp"
#include "vgg/io/error.hpp"
#include "vgg/io/safetensors.hpp"
#include "vgg/kernels/avgpool.hpp"
#include "vgg/onnx/layer_ops.hpp"

namespace vgg::io {

/// How batch norm is exported: as BatchNormalization nodes with the running statistics, or folded
/// into the convolution before it (the smaller, faster graph torch.onnx.export's constant folding
/// makes of an evaluation-mode model).
enum class onnx_batch_norm { node, folded };

inline constexpr std::int64_t onnx_export_min_opset = 13, onnx_export_max_opset = 17;

struct onnx_export_options {
    // {batch_norm, opset} reads as the two choices most often made.
    onnx_export_options(onnx_batch_norm batch_norm = onnx_batch_norm::node, std::int64_t opset = onnx_export_max_opset)
        : batch_norm(batch_norm), opset(opset)
    {}

    onnx_batch_norm batch_norm;
    /// Opset of the default domain, 13 to 17 (the range ONNX 1.12's checker knows from 13 on).
    std::int64_t opset;
    std::string input_name = "input", output_name = "output";
    /// Written as the model's metadata_props (vgg_train's preset: resize, ratio).
    std::map<std::string, std::string> metadata;
};

namespace detail {

inline void add_ints(::onnx::NodeProto& node, const char* name, std::initializer_list<std::int64_t> values)
{
    auto* attribute = node.add_attribute();
    attribute->set_name(name);
    attribute->set_type(::onnx::AttributeProto::INTS);
    for (const auto v : values)
        attribute->add_ints(v);
}

inline void add_int(::onnx::NodeProto& node, const char* name, std::int64_t value)
{
    auto* attribute = node.add_attribute();
    attribute->set_name(name);
    attribute->set_type(::onnx::AttributeProto::INT);
    attribute->set_i(value);
}

inline void add_float(::onnx::NodeProto& node, const char* name, float value)
{
    auto* attribute = node.add_attribute();
    attribute->set_name(name);
    attribute->set_type(::onnx::AttributeProto::FLOAT);
    attribute->set_f(value);
}

/// An initializer of `values` [dims] stored as raw_data (little-endian, as x86-64 is) of `type`.
template <class T>
void add_raw_initializer(::onnx::GraphProto& graph, const std::string& name, const std::vector<std::size_t>& dims,
                         ::onnx::TensorProto::DataType type, std::span<const T> values)
{
    auto* tensor = graph.add_initializer();
    tensor->set_name(name);
    tensor->set_data_type(type);
    for (const auto d : dims)
        tensor->add_dims(std::int64_t(d));
    std::string bytes(values.size() * sizeof(T), '\0');
    std::memcpy(bytes.data(), values.data(), bytes.size());
    tensor->set_raw_data(std::move(bytes));
}

inline void add_float_initializer(::onnx::GraphProto& graph, const std::string& name,
                                  const std::vector<std::size_t>& dims, std::span<const float> values)
{
    add_raw_initializer(graph, name, dims, ::onnx::TensorProto::FLOAT, values);
}

inline void add_int64_initializer(::onnx::GraphProto& graph, const std::string& name,
                                  const std::vector<std::int64_t>& values)
{
    auto* tensor = graph.add_initializer();
    tensor->set_name(name);
    tensor->set_data_type(::onnx::TensorProto::INT64);
    tensor->add_dims(std::int64_t(values.size()));
    for (const auto v : values)
        tensor->add_int64_data(v);
}

/// A parameter's values in the order of its shape, as files and PyTorch hold them.
inline std::vector<float> shape_ordered(const parameter_view& p)
{
    std::vector<float> values(p.value.size());
    copy_in_shape_order(p.shape, p.order, p.value, values.data());
    return values;
}

/// AdaptiveAvgPool2d from in_height x in_width to out_height x out_width as a matrix
/// [in_height * in_width, out_height * out_width]: PyTorch's windows may overlap and differ in
/// size, which no ONNX pooling node expresses.
inline std::vector<float> adaptive_pool_matrix(std::size_t in_height, std::size_t in_width, std::size_t out_height,
                                               std::size_t out_width)
{
    std::vector<float> matrix(in_height * in_width * out_height * out_width, 0.f);
    kernels::for_each_adaptive_window(
        {1, in_height, in_width, out_height, out_width},
        [&](std::size_t oy, std::size_t ox, std::size_t y0, std::size_t y1, std::size_t x0, std::size_t x1) {
            const float weight = 1.f / float((y1 - y0) * (x1 - x0));
            for (std::size_t y = y0; y < y1; ++y)
                for (std::size_t x = x0; x < x1; ++x)
                    matrix[(y * in_width + x) * out_height * out_width + oy * out_width + ox] = weight;
        });
    return matrix;
}

/// Builds the graph node by node; each node's output is the next one's input.
class graph_writer {
public:
    graph_writer(::onnx::GraphProto& graph, std::string input) : graph_(graph), value_(std::move(input)) {}

    ::onnx::NodeProto& node(const std::string& op_type, const std::string& name,
                            const std::vector<std::string>& extra_inputs = {})
    {
        auto& node = *graph_.add_node();
        node.set_op_type(op_type);
        node.set_name(name);
        node.add_input(value_);
        for (const auto& input : extra_inputs)
            node.add_input(input);
        value_ = name + "_output";
        node.add_output(value_);
        return node;
    }

    /// Renames the last node's output (the graph's output).
    void name_output(const std::string& name)
    {
        graph_.mutable_node(graph_.node_size() - 1)->set_output(0, name);
        value_ = name;
    }

private:
    ::onnx::GraphProto& graph_;
    std::string value_;
};

/// "features.7" from "features.7.weight": the name of the module that owns a parameter.
inline std::string module_name(const std::string& parameter) { return parameter.substr(0, parameter.rfind('.')); }

/// Whether ops[i] is a batch norm folded into the convolution before it.
inline bool folded_batch_norm(const std::vector<layer_op>& ops, std::size_t i, const onnx_export_options& options)
{
    return options.batch_norm == onnx_batch_norm::folded && i > 0 && i < ops.size() &&
           ops[i].kind == layer_op_kind::batch_norm && ops[i - 1].kind == layer_op_kind::conv;
}

/// A 3x3 Conv node with padding 1 (Conv2d(in, out, 3, padding=1)) of `weight` and `bias`.
inline void write_conv3x3_node(graph_writer& writer, const std::string& name, const std::string& weight,
                               const std::string& bias)
{
    auto& node = writer.node("Conv", name, {weight, bias});
    add_ints(node, "kernel_shape", {3, 3});
    add_ints(node, "pads", {1, 1, 1, 1});
    add_ints(node, "strides", {1, 1});
    add_ints(node, "dilations", {1, 1});
    add_int(node, "group", 1);
}

/// MaxPool2d(2).
inline void write_max_pool_node(graph_writer& writer, const std::string& name)
{
    auto& node = writer.node("MaxPool", name);
    add_ints(node, "kernel_shape", {2, 2});
    add_ints(node, "strides", {2, 2});
}

/// A Conv node for ops[k], with the batch norm after it folded in when options say so.
inline void write_conv(::onnx::GraphProto& graph, graph_writer& writer, const std::vector<layer_op>& ops, std::size_t k,
                       const onnx_export_options& options)
{
    const auto& op = ops[k];
    auto weight = shape_ordered(op.parameters[0]);
    auto bias = shape_ordered(op.parameters[1]);
    if (folded_batch_norm(ops, k + 1, options)) {
        const auto& bn = ops[k + 1].parameters; // weight, bias, running_mean, running_var
        const std::size_t per_channel = weight.size() / op.out_channels;
        for (std::size_t c = 0; c < op.out_channels; ++c) {
            const double scale =
                double(bn[0].value[c]) / std::sqrt(double(bn[3].value[c]) + double(ops[k + 1].epsilon));
            for (std::size_t i = 0; i < per_channel; ++i)
                weight[c * per_channel + i] = float(weight[c * per_channel + i] * scale);
            bias[c] = float((double(bias[c]) - bn[2].value[c]) * scale + bn[1].value[c]);
        }
    }
    add_float_initializer(graph, op.parameters[0].name, op.parameters[0].shape, weight);
    add_float_initializer(graph, op.parameters[1].name, op.parameters[1].shape, bias);
    write_conv3x3_node(writer, "/" + module_name(op.parameters[0].name) + "/Conv", op.parameters[0].name,
                       op.parameters[1].name);
}

/// An adaptive average pool: nothing for the identity, an AveragePool where windows tile the
/// input, otherwise a product with the pooling matrix between two Reshapes.
inline void write_adaptive_pool(::onnx::GraphProto& graph, graph_writer& writer, const layer_op& op,
                                const std::string& name)
{
    if (op.in_height == op.out_height && op.in_width == op.out_width)
        return;
    if (op.in_height % op.out_height == 0 && op.in_width % op.out_width == 0) {
        const auto kh = std::int64_t(op.in_height / op.out_height), kw = std::int64_t(op.in_width / op.out_width);
        auto& node = writer.node("AveragePool", name + "/AveragePool");
        add_ints(node, "kernel_shape", {kh, kw});
        add_ints(node, "strides", {kh, kw});
        return;
    }
    const auto c = std::int64_t(op.in_channels);
    add_int64_initializer(graph, name + "/planes", {0, c, std::int64_t(op.in_height * op.in_width)});
    add_int64_initializer(graph, name + "/pooled", {0, c, std::int64_t(op.out_height), std::int64_t(op.out_width)});
    add_float_initializer(graph, name + "/windows", {op.in_height * op.in_width, op.out_height * op.out_width},
                          adaptive_pool_matrix(op.in_height, op.in_width, op.out_height, op.out_width));
    writer.node("Reshape", name + "/Reshape", {name + "/planes"});
    writer.node("MatMul", name + "/MatMul", {name + "/windows"});
    writer.node("Reshape", name + "/Reshape_1", {name + "/pooled"});
}

/// The nodes and initializers of ops[k].
inline void write_op(::onnx::GraphProto& graph, graph_writer& writer, const std::vector<layer_op>& ops, std::size_t k,
                     const onnx_export_options& options)
{
    const auto& op = ops[k];
    const std::string name = "/layer" + std::to_string(op.layer) + "/" + std::to_string(k);
    switch (op.kind) {
    case layer_op_kind::conv: return write_conv(graph, writer, ops, k, options);
    case layer_op_kind::batch_norm: {
        if (folded_batch_norm(ops, k, options))
            return;
        std::vector<std::string> inputs;
        for (const auto& p : op.parameters) {
            add_float_initializer(graph, p.name, p.shape, shape_ordered(p));
            inputs.push_back(p.name);
        }
        auto& node =
            writer.node("BatchNormalization", "/" + module_name(op.parameters[0].name) + "/BatchNormalization", inputs);
        add_float(node, "epsilon", op.epsilon);
        return;
    }
    case layer_op_kind::relu: writer.node("Relu", name + "/Relu"); return;
    case layer_op_kind::max_pool: write_max_pool_node(writer, name + "/MaxPool"); return;
    case layer_op_kind::adaptive_avg_pool: return write_adaptive_pool(graph, writer, op, name);
    case layer_op_kind::flatten: add_int(writer.node("Flatten", name + "/Flatten"), "axis", 1); return;
    case layer_op_kind::linear: {
        for (const auto& p : op.parameters)
            add_float_initializer(graph, p.name, p.shape, shape_ordered(p));
        auto& node = writer.node("Gemm", "/" + module_name(op.parameters[0].name) + "/Gemm",
                                 {op.parameters[0].name, op.parameters[1].name});
        add_int(node, "transB", 1);
        return;
    }
    case layer_op_kind::dropout: return; // the identity in evaluation
    }
}

/// A model with vgg's header and options' opset and metadata, its graph still empty. Throws
/// std::invalid_argument for an opset out of range.
inline ::onnx::ModelProto new_model(const onnx_export_options& options)
{
    if (options.opset < onnx_export_min_opset || options.opset > onnx_export_max_opset)
        throw std::invalid_argument("to_onnx: opset " + std::to_string(options.opset) + " is not one of " +
                                    std::to_string(onnx_export_min_opset) + " to " +
                                    std::to_string(onnx_export_max_opset));
    ::onnx::ModelProto model;
    model.set_ir_version(8);
    model.set_producer_name("vgg");
    for (const auto& [key, value] : options.metadata) {
        auto* entry = model.add_metadata_props();
        entry->set_key(key);
        entry->set_value(value);
    }
    auto* opset = model.add_opset_import();
    opset->set_domain("");
    opset->set_version(options.opset);
    model.mutable_graph()->set_name("vgg");
    return model;
}

/// A float tensor value [batch, dims...] with a symbolic batch.
inline void set_float_value(::onnx::ValueInfoProto& value, const std::string& name,
                            const std::vector<std::size_t>& dims)
{
    value.set_name(name);
    auto& tensor = *value.mutable_type()->mutable_tensor_type();
    tensor.set_elem_type(::onnx::TensorProto::FLOAT);
    tensor.mutable_shape()->add_dim()->set_dim_param("batch");
    for (const auto d : dims)
        tensor.mutable_shape()->add_dim()->set_dim_value(std::int64_t(d));
}

/// Declares the graph's image input [batch, C, H, W].
template <class Input>
void declare_input(::onnx::GraphProto& graph, const onnx_export_options& options)
{
    using input = image_dims<Input>;
    set_float_value(*graph.add_input(), options.input_name, {input::channels, input::height, input::width});
}

/// Names the last node's output as the graph's output [batch, Output's dims].
template <class Output>
void declare_output(::onnx::GraphProto& graph, graph_writer& writer, const onnx_export_options& options)
{
    writer.name_output(options.output_name);
    std::vector<std::size_t> output_dims;
    for (const auto d : Output::dims)
        output_dims.push_back(d);
    set_float_value(*graph.add_output(), options.output_name, output_dims);
}

/// Runs ONNX's checker on a model vgg made: a refusal is vgg's bug, a std::logic_error.
inline void check_made_model(const ::onnx::ModelProto& model)
{
    try {
        ::onnx::checker::check_model(model);
    } catch (const std::exception& e) {
        throw std::logic_error(std::string("to_onnx made a model ONNX's checker refuses: ") + e.what());
    }
}

/// Writes the model `make()` returns to `path` atomically; its std::invalid_argument becomes a
/// file_error naming the file.
template <class MakeModel>
void save_model(const std::filesystem::path& path, MakeModel make)
{
    ::onnx::ModelProto model;
    try {
        model = make();
    } catch (const std::invalid_argument& e) {
        throw file_error(path, std::string("not written: ") + e.what());
    }
    std::string bytes;
    if (!model.SerializeToString(&bytes))
        throw file_error(path, "not written: the model is over protobuf's 2 GiB limit");
    write_file_atomically(path, bytes);
}

} // namespace detail

/// The network as an ONNX model for inference (evaluation mode: Dropout is left out, batch norm
/// uses its running statistics). The input is [batch, C, H, W] with a symbolic batch, the output
/// [batch, classes]. Throws std::invalid_argument for an opset out of range or a non-finite
/// parameter.
template <class Net>
::onnx::ModelProto to_onnx(Net& net, const onnx_export_options& options = {})
{
    static_assert(is_image_shape_v<typename Net::input_shape>, "to_onnx(net) needs a network with an image input.");
    ::onnx::ModelProto model = detail::new_model(options);
    if (const auto bad = first_non_finite_parameter(net); !bad.empty())
        throw std::invalid_argument("to_onnx: parameter \"" + bad + "\" holds a NaN or an infinity");
    auto& graph = *model.mutable_graph();
    detail::declare_input<typename Net::input_shape>(graph, options);
    detail::graph_writer writer(graph, options.input_name);
    const auto ops = ops_with_parameters(net);
    for (std::size_t k = 0; k < ops.size(); ++k)
        detail::write_op(graph, writer, ops, k, options);
    detail::declare_output<typename Net::output_shape>(graph, writer, options);
    detail::check_made_model(model);
    return model;
}

/// Saves the network as an ONNX model (see to_onnx), written atomically: a failure leaves any
/// earlier file as it was.
template <class Net>
void save_onnx(Net& net, const std::filesystem::path& path, const onnx_export_options& options = {})
{
    detail::save_model(path, [&] { return to_onnx(net, options); });
}

} // namespace vgg::io
