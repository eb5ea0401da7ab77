#pragma once
// A quantised network in a safetensors file, under its fp32 weights' names: for each layer
// "features.3.weight" in I8 ([out][in][3][3], or [out][in]), and F32 "features.3.weight_scale"
// [out], "features.3.bias" [out] and "features.3.input_scale" [] (the u8 input's step); the first
// layer's also "features.0.input_zero_point" [] (the image's code of 0, a whole number in F32).
// Metadata: "format" (io::int8_network_format) and "layers", the weights' names in order.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vgg/int8/quantized_parts.hpp"
#include "vgg/io/safetensors.hpp"

namespace vgg::int8 {

namespace detail {

/// The tensor beside weight `weight_name`: "features.3.weight" and "bias" give "features.3.bias".
inline std::string beside(const std::string& weight_name, const std::string& suffix)
{
    constexpr std::string_view weight = "weight";
    if (weight_name.ends_with(weight))
        return weight_name.substr(0, weight_name.size() - weight.size()) + suffix;
    return weight_name + "." + suffix;
}

/// Why a weight code is refused: what the kernels take.
inline std::string weight_range_text()
{
    const std::string limit = std::to_string(kernels::int8::weight_code_limit);
    return "vgg's int8 weights lie in [-" + limit + ", " + limit + "] (AVX2 sums pairs of u8 x s8 products in int16)";
}

inline std::vector<std::size_t> weight_shape(const layer_op& op)
{
    if (op.type == layer_op::kind::conv)
        return {op.out, op.in, 3, 3};
    return {op.out, op.in};
}

/// Takes the tensors of a file one by one, each checked against the shape the network needs;
/// what is left at the end belongs to no layer.
class tensor_taker {
public:
    tensor_taker(io::safetensors_content& content, const std::filesystem::path& path) : content_(content), path_(path)
    {}

    /// An F32 tensor's values, finite (and above zero when `positive`).
    std::vector<float> floats(const std::string& name, const std::vector<std::size_t>& shape, bool positive = false)
    {
        io::stored_tensor tensor = take(name, shape, false);
        for (std::size_t i = 0; i < tensor.values.size(); ++i) {
            const float v = tensor.values[i];
            if (!std::isfinite(v) || (positive && !(v > 0.f)))
                throw io::file_error(path_, "tensor \"" + name + "\" holds " + std::to_string(v) + " at index " +
                                                std::to_string(i) + ": its values must be finite" +
                                                (positive ? " and above zero" : ""));
        }
        return std::move(tensor.values);
    }

    /// An I8 tensor's values, each in [-weight_code_limit, weight_code_limit].
    std::vector<std::int8_t> int8s(const std::string& name, const std::vector<std::size_t>& shape)
    {
        io::stored_tensor tensor = take(name, shape, true);
        for (std::size_t i = 0; i < tensor.int8_values.size(); ++i)
            if (std::abs(int(tensor.int8_values[i])) > kernels::int8::weight_code_limit)
                throw io::file_error(path_, "tensor \"" + name + "\" holds " + std::to_string(tensor.int8_values[i]) +
                                                " at index " + std::to_string(i) + ": " + weight_range_text());
        return std::move(tensor.int8_values);
    }

    void check_nothing_left() const
    {
        if (!content_.tensors.empty())
            throw io::file_error(path_, "tensor \"" + content_.tensors.begin()->first +
                                            "\" belongs to no layer of this network");
    }

private:
    io::stored_tensor take(const std::string& name, const std::vector<std::size_t>& shape, bool int8)
    {
        const auto found = content_.tensors.find(name);
        if (found == content_.tensors.end())
            throw io::file_error(path_, "tensor \"" + name + "\" " + io::shape_text(shape) +
                                            " is missing (is this an int8 file of another architecture?)");
        const std::string dtype = int8 ? "I8" : "F32";
        if (found->second.dtype != dtype || found->second.shape != shape)
            throw io::file_error(path_, "tensor \"" + name + "\" is " + found->second.dtype + " " +
                                            io::shape_text(found->second.shape) + ", but this network needs " + dtype +
                                            " " + io::shape_text(shape));
        io::stored_tensor tensor = std::move(found->second);
        content_.tensors.erase(found);
        return tensor;
    }

    io::safetensors_content& content_;
    const std::filesystem::path& path_;
};

template <class Values>
aligned_vector<float> aligned(const Values& values)
{
    return aligned_vector<float>(values.begin(), values.end());
}

} // namespace detail

/// Writes a quantised network's layers to `path`, atomically (io::write_file_atomically).
inline void write_quantized_parts(const std::vector<int8_layer_parts>& parts, const std::filesystem::path& path)
{
    using detail::beside;
    std::vector<io::tensor_to_write> tensors;
    std::string names;
    for (const int8_layer_parts& part : parts) {
        const layer_op& op = part.layer;
        names += (names.empty() ? "" : ",") + op.parameter;
        tensors.push_back(
            {.name = op.parameter, .shape = detail::weight_shape(op), .int8_values = part.weights.values});
        tensors.push_back({beside(op.parameter, "weight_scale"), {op.out}, part.weights.scales});
        tensors.push_back({beside(op.parameter, "bias"), {op.out}, op.bias});
        tensors.push_back({beside(op.parameter, "input_scale"), {}, std::span(&part.input.scale, 1)});
    }
    const float zero_point = float(parts.front().input.zero_point);
    tensors.push_back({beside(parts.front().layer.parameter, "input_zero_point"), {}, std::span(&zero_point, 1)});
    io::write_safetensors(path, tensors,
                          {{"format", io::int8_network_format},
                           {"layers", names},
                           {"scheme", "weights s8 per output channel in [-63, 63]; inputs u8 per tensor, the image's "
                                      "with a zero point, the others from zero; the last layer's output fp32"}});
}

/// The layers of a network of `structure` (layer_structure<Net>()) in `content`, read from `path`,
/// checking every tensor's dtype, shape and values; a file of another network or a damaged one is
/// an io::file_error that names the tensor.
inline std::vector<int8_layer_parts> read_quantized_parts(std::vector<layer_op> structure,
                                                          io::safetensors_content content,
                                                          const std::filesystem::path& path)
{
    const auto format = content.metadata.find("format");
    if (format == content.metadata.end() || format->second != io::int8_network_format)
        throw io::file_error(path, std::string("is not an int8 network (its metadata has no \"format\": \"") +
                                       io::int8_network_format + "\"): make one with vgg::int8::quantize and save it");
    const std::string list = content.metadata["layers"];
    std::vector<std::string> names;
    for (std::size_t begin = 0; begin <= list.size();) {
        const std::size_t end = std::min(list.find(',', begin), list.size());
        names.push_back(list.substr(begin, end - begin));
        begin = end + 1;
    }
    if (names.size() != structure.size())
        throw io::file_error(path, "holds " + std::to_string(names.size()) +
                                       " convolutions and fully connected layers, but this network has " +
                                       std::to_string(structure.size()));
    detail::tensor_taker take(content, path);
    using detail::beside;
    std::vector<int8_layer_parts> parts;
    for (std::size_t k = 0; k < structure.size(); ++k) {
        layer_op& op = structure[k];
        op.parameter = names[k];
        const std::string& name = op.parameter;
        int8_layer_parts part;
        part.weights.values = take.int8s(name, detail::weight_shape(op));
        part.weights.scales = take.floats(beside(name, "weight_scale"), {op.out}, true);
        op.bias = detail::aligned(take.floats(beside(name, "bias"), {op.out}));
        part.input.scale = take.floats(beside(name, "input_scale"), {}, true).front();
        if (k == 0) {
            const std::string zero_point = beside(name, "input_zero_point");
            const float code = take.floats(zero_point, {}).front();
            if (!(code >= 0.f && code <= float(kernels::int8::activation_levels) && code == std::floor(code)))
                throw io::file_error(path, "tensor \"" + zero_point + "\" holds " + std::to_string(code) +
                                               ": a zero point is a whole number from 0 to 255");
            part.input.zero_point = static_cast<int>(code);
        }
        part.layer = std::move(op);
        parts.push_back(std::move(part));
    }
    take.check_nothing_left();
    return parts;
}

} // namespace vgg::int8
