#pragma once
// ONNX import, its first half: a model's graph read as the chain of steps it applies to its one
// input (initializers and Constant values by name, shape-only side nodes passed by), before
// import.hpp (int8_import.hpp for a quantised model) matches the chain to a network.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <onnx/onnx_pb.h>

#include "vgg/io/error.hpp"
#include "vgg/onnx/proto_values.hpp"

namespace vgg::io {

/// The opsets of the default domain whose versions of the operators below import reads.
inline constexpr std::int64_t onnx_import_min_opset = 7, onnx_import_max_opset = 21;

namespace detail {

/// What the graph does to the activation, node by node, before it is matched to the network.
enum class onnx_step_kind {
    conv,
    batch_norm,
    relu,
    max_pool,
    average_pool,
    global_average_pool,
    flatten,
    reshape,
    matmul,
    add,
    gemm,
    pool_matrix,
    linear,
    quantise // QuantizeLinear + DequantizeLinear: tensors scale, zero point
};

struct onnx_step {
    onnx_step_kind kind;
    std::string label; // node "/features/features.0/Conv" (Conv)
    std::vector<const onnx_tensor*> tensors;
    std::vector<std::int64_t> kernel; // AveragePool's
    bool transposed_b = true;         // Gemm's transB, MatMul's B is not
    float epsilon = 1e-5f;
};

/// Reads a model's graph as a chain of steps applied to its one input.
class onnx_graph_reader {
public:
    /// A model in QDQ form gives quantise steps, and its weights through DequantizeLinear.
    onnx_graph_reader(const ::onnx::ModelProto& model, const std::filesystem::path& path) : path_(path)
    {
        check_opset(model);
        if (!model.has_graph() || model.graph().node_size() == 0)
            throw file_error(path_, "is an ONNX model without a graph (or a file of another kind that parsed as one)");
        const auto& graph = model.graph();
        for (const auto& t : graph.initializer()) {
            if (tensors_.count(t.name()))
                throw file_error(path_, "names initializer \"" + t.name() + "\" twice");
            tensors_.emplace(t.name(), read_onnx_tensor(t, "initializer \"" + t.name() + "\"", path_));
        }
        for (const auto& input : graph.input())
            if (!tensors_.count(input.name()))
                inputs_.push_back(&input);
        if (inputs_.size() != 1) {
            std::string names;
            for (const auto* input : inputs_)
                names += (names.empty() ? "" : ", ") + ("\"" + input->name() + "\"");
            throw file_error(path_, "has " + std::to_string(inputs_.size()) +
                                        " graph inputs that are not initializers (" + names +
                                        "); a vgg network takes one batch of images");
        }
        if (graph.output_size() != 1)
            throw file_error(path_,
                             "has " + std::to_string(graph.output_size()) + " graph outputs; a vgg network has one");
        walk(graph);
        if (current_ != graph.output(0).name())
            throw file_error(path_,
                             "computes its output \"" + graph.output(0).name() +
                                 "\" otherwise than as a chain of layers from its input, which vgg networks are");
        if (!dequantised_)
            throw file_error(path_, "ends with a QuantizeLinear: its output is u8 codes, not logits");
        combine();
    }

    const ::onnx::ValueInfoProto& input() const { return *inputs_.front(); }
    const std::vector<onnx_step>& steps() const { return steps_; }
    std::int64_t opset() const { return opset_; }

private:
    void check_opset(const ::onnx::ModelProto& model)
    {
        for (const auto& o : model.opset_import())
            if (o.domain().empty() || o.domain() == "ai.onnx")
                opset_ = o.version();
        if (opset_ < onnx_import_min_opset || opset_ > onnx_import_max_opset)
            throw file_error(
                path_, "uses opset " + std::to_string(opset_) + " of ONNX's default domain; vgg reads opsets " +
                           std::to_string(onnx_import_min_opset) + " to " + std::to_string(onnx_import_max_opset));
    }

    std::string label(const ::onnx::NodeProto& node, std::size_t index) const
    {
        return "node " + (node.name().empty() ? "#" + std::to_string(index) : "\"" + node.name() + "\"") + " (" +
               node.op_type() + ")";
    }

    const onnx_tensor& constant_input(const ::onnx::NodeProto& node, int input, const std::string& what,
                                      std::size_t index) const
    {
        if (node.input_size() <= input || node.input(input).empty())
            throw file_error(path_, label(node, index) + " has no " + what);
        const auto found = tensors_.find(node.input(input));
        if (found == tensors_.end())
            throw file_error(path_, label(node, index) + " takes its " + what + " \"" + node.input(input) +
                                        "\" from the graph, not from an initializer; vgg needs it as a constant");
        return found->second;
    }

    std::vector<std::int64_t> ints(const ::onnx::NodeProto& node, std::string_view name,
                                   std::vector<std::int64_t> otherwise) const
    {
        const auto* a = find_attribute(node, name);
        return a ? std::vector<std::int64_t>(a->ints().begin(), a->ints().end()) : otherwise;
    }
    std::int64_t integer(const ::onnx::NodeProto& node, std::string_view name, std::int64_t otherwise) const
    {
        const auto* a = find_attribute(node, name);
        return a ? a->i() : otherwise;
    }

    void require(bool holds, const ::onnx::NodeProto& node, std::size_t index, const std::string& why) const
    {
        if (!holds)
            throw file_error(path_, label(node, index) + " " + why);
    }

    // Nodes that only compute shapes (torch's x.view(x.size(0), -1)) beside the chain.
    static bool computes_shapes(const std::string& op)
    {
        static const std::set<std::string> ops{"Shape", "Gather", "Unsqueeze", "Squeeze",         "Concat",
                                               "Cast",  "Slice",  "Constant",  "ConstantOfShape", "Identity"};
        return ops.count(op) > 0;
    }

    void walk(const ::onnx::GraphProto& graph)
    {
        current_ = input().name();
        std::set<std::string> passed; // activations the chain has moved past
        for (int n = 0; n < graph.node_size(); ++n) {
            const auto& node = graph.node(n);
            const std::size_t index = std::size_t(n);
            if (!node.domain().empty() && node.domain() != "ai.onnx")
                throw file_error(path_, label(node, index) + " is from domain \"" + node.domain() +
                                            "\"; vgg reads only ONNX's default domain");
            if (node.op_type() == "Constant") {
                const auto* value = find_attribute(node, "value");
                require(value && value->has_t() && node.output_size() == 1, node, index,
                        "gives its value otherwise than as a tensor attribute \"value\"");
                tensors_[node.output(0)] = read_onnx_tensor(value->t(), label(node, index), path_);
                continue;
            }
            if (node.op_type() == "DequantizeLinear" && node.input_size() >= 2 && tensors_.count(node.input(0))) {
                tensors_[node.output(0)] = dequantize_constant(
                    tensors_.at(node.input(0)), node.input(0), constant_input(node, 1, "scale", index),
                    node.input_size() > 2 ? &constant_input(node, 2, "zero point", index) : nullptr,
                    integer(node, "axis", 1), label(node, index), path_);
                continue;
            }
            if (node.op_type() == "Identity" && node.input_size() == 1 && tensors_.count(node.input(0))) {
                // torch.onnx.export names one initializer under several names this way.
                tensors_[node.output(0)] = tensors_.at(node.input(0));
                continue;
            }
            const bool takes_activation =
                std::find(node.input().begin(), node.input().end(), current_) != node.input().end();
            for (const auto& input : node.input())
                require(!passed.count(input) || node.op_type() == "Shape", node, index,
                        "reads \"" + input +
                            "\", an activation the chain has already moved past: vgg networks do not branch");
            if (!takes_activation || node.op_type() == "Shape") {
                require(computes_shapes(node.op_type()), node, index,
                        takes_activation ? "is not supported" : "is an operator vgg does not support");
                continue;
            }
            require(node.output_size() >= 1, node, index, "has no output");
            step(node, index);
            passed.insert(current_);
            current_ = node.output(0);
        }
    }

    void step(const ::onnx::NodeProto& node, std::size_t index)
    {
        const std::string& op = node.op_type();
        if (op == "QuantizeLinear" || op == "DequantizeLinear")
            return read_quantise(node, index);
        require(dequantised_, node, index, "reads a QuantizeLinear's codes; vgg reads QDQ models");
        onnx_step s{onnx_step_kind::relu, label(node, index), {}, {}, true, 1e-5f};
        if (op == "Conv")
            read_conv(node, index, s);
        else if (op == "BatchNormalization")
            read_batch_norm(node, index, s);
        else if (op == "Relu")
            s.kind = onnx_step_kind::relu;
        else if (op == "MaxPool")
            read_max_pool(node, index, s);
        else if (op == "AveragePool")
            read_average_pool(node, index, s);
        else if (op == "GlobalAveragePool")
            s.kind = onnx_step_kind::global_average_pool;
        else if (op == "Flatten")
            read_flatten(node, index, s);
        else if (op == "Reshape")
            read_reshape(node, index, s);
        else if (op == "MatMul" || op == "Add")
            read_matmul_or_add(node, index, s);
        else if (op == "Gemm")
            read_gemm(node, index, s);
        else if (op == "Dropout" || op == "Identity")
            return; // the identity at inference
        else
            throw file_error(path_, label(node, index) +
                                        " is an operator vgg does not support (it reads Conv, "
                                        "BatchNormalization, Relu, MaxPool, AveragePool, GlobalAveragePool, "
                                        "Flatten, Reshape, Gemm, MatMul, Add, Dropout and Identity)");
        steps_.push_back(std::move(s));
    }

    /// A QuantizeLinear of the activation, per tensor, starts a quantise step; the DequantizeLinear
    /// that must follow it, with the same scale and zero point, ends it.
    void read_quantise(const ::onnx::NodeProto& node, std::size_t index)
    {
        require(node.input(0) == current_ && node.input_size() == 3, node, index,
                "needs the activation, a scale and a zero point as its inputs");
        const onnx_tensor *scale = &constant_input(node, 1, "scale", index),
                          *zero_point = &constant_input(node, 2, "zero point", index);
        require(scale->floats.size() == 1 && zero_point->integers.size() == 1, node, index,
                "quantises the activation with several scales; vgg's int8 layers quantise it per tensor");
        const bool ends = node.op_type() == "DequantizeLinear";
        require(ends != dequantised_, node, index,
                ends ? "dequantises a value no QuantizeLinear made" : "quantises a value it does not dequantise");
        if (ends) {
            const auto& q = steps_.back().tensors;
            require(q[0]->floats == scale->floats && q[1]->integers == zero_point->integers &&
                        q[1]->type == zero_point->type,
                    node, index, "dequantises with another scale or zero point than its QuantizeLinear's");
        } else {
            steps_.push_back({onnx_step_kind::quantise, label(node, index), {scale, zero_point}, {}, true, 1e-5f});
        }
        dequantised_ = ends;
    }

    /// Requires attribute `attribute` of a node to be [1, 1] (or absent).
    void require_ones(const ::onnx::NodeProto& node, std::size_t index, std::string_view attribute) const
    {
        const auto values = ints(node, attribute, {1, 1});
        require(values == std::vector<std::int64_t>{1, 1}, node, index,
                "has " + std::string(attribute) + " " + ints_text(values) + "; vgg's layers have " +
                    std::string(attribute) + " [1, 1]");
    }

    /// A 3x3 convolution, stride 1, padding 1.
    void read_conv(const ::onnx::NodeProto& node, std::size_t index, onnx_step& s)
    {
        s.kind = onnx_step_kind::conv;
        require(node.input(0) == current_, node, index, "convolves another input than the activation");
        s.tensors.push_back(&constant_input(node, 1, "weight", index));
        if (node.input_size() > 2 && !node.input(2).empty())
            s.tensors.push_back(&constant_input(node, 2, "bias", index));
        require_ones(node, index, "strides");
        require_ones(node, index, "dilations");
        require(integer(node, "group", 1) == 1, node, index,
                "has group " + std::to_string(integer(node, "group", 1)) + "; vgg's convolutions have group 1");
        const auto* auto_pad = find_attribute(node, "auto_pad");
        const bool same = auto_pad && (auto_pad->s() == "SAME_UPPER" || auto_pad->s() == "SAME_LOWER");
        require(!auto_pad || same || auto_pad->s() == "NOTSET", node, index,
                "has auto_pad " + (auto_pad ? auto_pad->s() : "") + "; vgg's convolutions pad by 1");
        if (!same) {
            const auto pads = ints(node, "pads", {0, 0, 0, 0});
            require(pads == std::vector<std::int64_t>{1, 1, 1, 1}, node, index,
                    "has pads " + ints_text(pads) + "; vgg's convolutions pad by 1 on every side, [1, 1, 1, 1]");
        }
    }

    /// Batch norm in inference mode.
    void read_batch_norm(const ::onnx::NodeProto& node, std::size_t index, onnx_step& s)
    {
        s.kind = onnx_step_kind::batch_norm;
        const char* names[] = {"scale", "bias", "mean", "variance"};
        for (int i = 0; i < 4; ++i)
            s.tensors.push_back(&constant_input(node, i + 1, names[i], index));
        require(integer(node, "training_mode", 0) == 0 && integer(node, "is_test", 1) != 0, node, index,
                "is in training mode; vgg imports models for inference");
        const auto* epsilon = find_attribute(node, "epsilon");
        s.epsilon = epsilon ? epsilon->f() : 1e-5f;
    }

    /// A 2x2 max-pool, stride 2.
    void read_max_pool(const ::onnx::NodeProto& node, std::size_t index, onnx_step& s)
    {
        s.kind = onnx_step_kind::max_pool;
        const auto kernel = ints(node, "kernel_shape", {});
        const auto strides = ints(node, "strides", {1, 1});
        require(kernel == std::vector<std::int64_t>{2, 2} && strides == kernel, node, index,
                "has kernel " + ints_text(kernel) + " and strides " + ints_text(strides) +
                    "; vgg's max-pool has kernel [2, 2] and strides [2, 2]");
        const auto pads = ints(node, "pads", {0, 0, 0, 0});
        require(std::all_of(pads.begin(), pads.end(), [](std::int64_t p) { return p == 0; }), node, index,
                "has pads " + ints_text(pads) + "; vgg's max-pool does not pad");
        require_ones(node, index, "dilations");
        require(node.output_size() == 1 || node.output(1).empty(), node, index,
                "also outputs its indices, which vgg does not");
    }

    /// An average pool whose strides equal its kernel.
    void read_average_pool(const ::onnx::NodeProto& node, std::size_t index, onnx_step& s)
    {
        s.kind = onnx_step_kind::average_pool;
        s.kernel = ints(node, "kernel_shape", {});
        const auto strides = ints(node, "strides", {1, 1});
        require(s.kernel.size() == 2 && strides == s.kernel, node, index,
                "has kernel " + ints_text(s.kernel) + " and strides " + ints_text(strides) +
                    "; vgg reads average pools whose strides equal their kernel");
        const auto pads = ints(node, "pads", {0, 0, 0, 0});
        require(std::all_of(pads.begin(), pads.end(), [](std::int64_t p) { return p == 0; }), node, index,
                "has pads " + ints_text(pads) + "; vgg reads average pools without padding");
        require(integer(node, "ceil_mode", 0) == 0, node, index, "has ceil_mode 1; vgg reads average pools that floor");
        require_ones(node, index, "dilations");
    }

    /// A Flatten that keeps the batch.
    void read_flatten(const ::onnx::NodeProto& node, std::size_t index, onnx_step& s) const
    {
        s.kind = onnx_step_kind::flatten;
        require(integer(node, "axis", 1) == 1, node, index,
                "has axis " + std::to_string(integer(node, "axis", 1)) + "; vgg's Flatten keeps the batch, axis 1");
    }

    /// A Reshape of the activation.
    void read_reshape(const ::onnx::NodeProto& node, std::size_t index, onnx_step& s)
    {
        s.kind = onnx_step_kind::reshape;
        require(node.input(0) == current_, node, index, "reshapes another input than the activation");
        require(integer(node, "allowzero", 0) == 0, node, index, "has allowzero 1, which vgg does not read");
        if (const auto found = tensors_.find(node.input_size() > 1 ? node.input(1) : ""); found != tensors_.end())
            s.tensors.push_back(&found->second); // a computed shape (Shape, Gather, Concat) stays unknown
    }

    /// MatMul with a constant on the right, or Add of a constant.
    void read_matmul_or_add(const ::onnx::NodeProto& node, std::size_t index, onnx_step& s)
    {
        const std::string& op = node.op_type();
        s.kind = op == "MatMul" ? onnx_step_kind::matmul : onnx_step_kind::add;
        require(node.input_size() == 2, node, index, "needs two inputs");
        const int other = node.input(0) == current_ ? 1 : 0;
        require(op == "Add" || other == 1, node, index,
                "multiplies the activation from the right; vgg's Linear from the left");
        s.tensors.push_back(&constant_input(node, other, op == "MatMul" ? "weight" : "bias", index));
    }

    /// Gemm with the activation as A.
    void read_gemm(const ::onnx::NodeProto& node, std::size_t index, onnx_step& s)
    {
        s.kind = onnx_step_kind::gemm;
        require(node.input(0) == current_, node, index, "takes the activation as B; vgg's Linear takes it as A");
        s.tensors.push_back(&constant_input(node, 1, "weight", index));
        if (node.input_size() > 2 && !node.input(2).empty())
            s.tensors.push_back(&constant_input(node, 2, "bias", index));
        const auto* alpha = find_attribute(node, "alpha");
        const auto* beta = find_attribute(node, "beta");
        require((!alpha || alpha->f() == 1.f) && (!beta || beta->f() == 1.f), node, index,
                "has alpha or beta other than 1, which vgg's Linear does not");
        require(integer(node, "transA", 0) == 0, node, index, "has transA 1, which vgg's Linear does not");
        s.transposed_b = integer(node, "transB", 0) == 1;
    }

    // MatMul + Add is a Linear, as Gemm is; Reshape + MatMul + Reshape pools by a matrix (vgg's own
    // export of an AdaptiveAvgPool2d whose windows differ); any other Reshape flattens.
    void combine()
    {
        std::vector<onnx_step> combined;
        for (std::size_t i = 0; i < steps_.size(); ++i) {
            auto s = steps_[i];
            const auto next_is = [&](std::size_t k, onnx_step_kind kind) {
                return i + k < steps_.size() && steps_[i + k].kind == kind;
            };
            if (s.kind == onnx_step_kind::reshape && next_is(1, onnx_step_kind::matmul) &&
                next_is(2, onnx_step_kind::reshape) && !next_is(3, onnx_step_kind::add)) {
                s.kind = onnx_step_kind::pool_matrix;
                s.tensors = {steps_[i + 1].tensors[0]};
                i += 2;
            } else if (s.kind == onnx_step_kind::reshape) {
                s.kind = onnx_step_kind::flatten;
                if (!s.tensors.empty()) {
                    const auto& target = s.tensors[0]->integers;
                    if (!(target.size() == 2 && (target[0] == 0 || target[0] == -1 || target[0] == 1)))
                        throw file_error(path_, s.label + " reshapes to " + ints_text(target) +
                                                    "; vgg reads a Reshape only as a Flatten, to [batch, features]");
                }
            } else if (s.kind == onnx_step_kind::matmul) {
                s.kind = onnx_step_kind::linear;
                s.transposed_b = false;
                if (next_is(1, onnx_step_kind::add))
                    s.tensors.push_back(steps_[++i].tensors[0]);
            } else if (s.kind == onnx_step_kind::gemm) {
                s.kind = onnx_step_kind::linear;
            } else if (s.kind == onnx_step_kind::add) {
                throw file_error(
                    path_,
                    s.label + " adds to an activation that no MatMul made; vgg reads Add only as a Linear's bias");
            }
            combined.push_back(std::move(s));
        }
        steps_ = std::move(combined);
    }

    std::filesystem::path path_;
    bool dequantised_ = true; // no QuantizeLinear waits for its DequantizeLinear
    std::int64_t opset_ = 0;
    std::map<std::string, onnx_tensor> tensors_;
    std::vector<const ::onnx::ValueInfoProto*> inputs_;
    std::vector<onnx_step> steps_;
    std::string current_;
};

} // namespace detail

} // namespace vgg::io
