#pragma once
// Values read out of an ONNX model's protobuf messages: tensors (initializers, Constant values,
// constants through DequantizeLinear) and node attributes.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <onnx/onnx_pb.h>

#include "vgg/io/error.hpp"

namespace vgg::io::detail {

/// How a quantised model's constant (an int8 weight, an int32 bias) becomes fp32 through
/// DequantizeLinear: a scale and a zero point per index along `axis`, or one for all.
struct onnx_tensor;
struct onnx_dequantisation {
    std::string codes_name; ///< the integer initializer's name
    const onnx_tensor* codes = nullptr;
    std::vector<float> scales;
    std::vector<std::int64_t> zero_points;
    std::int64_t axis = 1;
};

/// An initializer or a Constant's value, as float (weights) or integers (shapes; the codes of a
/// quantised model). A dequantised constant has both: its fp32 values and how they were made.
struct onnx_tensor {
    std::vector<std::int64_t> dims;
    std::vector<float> floats;
    std::vector<std::int64_t> integers;
    bool is_float = false;
    ::onnx::TensorProto::DataType type = ::onnx::TensorProto::FLOAT;
    std::optional<onnx_dequantisation> dequantised{};
};

inline std::string ints_text(const std::vector<std::int64_t>& values)
{
    std::string text = "[";
    for (std::size_t i = 0; i < values.size(); ++i)
        text += (i ? ", " : "") + std::to_string(values[i]);
    return text + "]";
}

/// Reads a TensorProto of type FLOAT, INT64, INT32, INT8 or UINT8, from raw_data or the typed field.
inline onnx_tensor read_onnx_tensor(const ::onnx::TensorProto& t, const std::string& what,
                                    const std::filesystem::path& path)
{
    if (t.data_location() == ::onnx::TensorProto::EXTERNAL || t.external_data_size() > 0)
        throw file_error(path, what + " keeps its data in an external file, which vgg does not read (save the model "
                                      "with its weights inside)");
    onnx_tensor tensor;
    tensor.type = ::onnx::TensorProto::DataType(t.data_type());
    std::uint64_t count = 1;
    for (const auto d : t.dims()) {
        if (d < 0 || (d > 0 && count > (std::uint64_t(1) << 40) / std::uint64_t(d)))
            throw file_error(path, what + " declares dimensions " + ints_text({t.dims().begin(), t.dims().end()}) +
                                       ", which no tensor can have");
        tensor.dims.push_back(d);
        count *= std::uint64_t(d);
    }
    auto mismatch = [&](std::uint64_t stored) {
        return file_error(path, what + " declares " + std::to_string(count) + " values (dimensions " +
                                    ints_text(tensor.dims) + ") but holds " + std::to_string(stored));
    };
    // The values come either as raw_data (little-endian, as x86-64 is) or in the type's own field.
    auto read_values = [&]<class T>(const auto& typed) {
        const std::string& raw = t.raw_data();
        if (raw.empty() && typed.size() > 0) {
            if (std::uint64_t(typed.size()) != count)
                throw mismatch(std::uint64_t(typed.size()));
            for (const auto v : typed) // INT8 and UINT8 come in int32_data
                if (static_cast<decltype(v)>(static_cast<T>(v)) != v)
                    throw file_error(path, what + " holds " + std::to_string(v) + ", which " +
                                               ::onnx::TensorProto_DataType_Name(t.data_type()) + " cannot");
            return std::vector<T>(typed.begin(), typed.end());
        }
        if (raw.size() != count * sizeof(T))
            throw mismatch(raw.size() / sizeof(T));
        std::vector<T> out(count);
        if (count > 0) // memcpy's pointers must not be null, even for no bytes
            std::memcpy(out.data(), raw.data(), raw.size());
        return out;
    };
    if (t.data_type() == ::onnx::TensorProto::FLOAT) {
        tensor.is_float = true;
        tensor.floats = read_values.template operator()<float>(t.float_data());
        return tensor;
    }
    const auto as_integers = [&](const auto& values) { tensor.integers.assign(values.begin(), values.end()); };
    switch (t.data_type()) {
    case ::onnx::TensorProto::INT64: as_integers(read_values.template operator()<std::int64_t>(t.int64_data())); break;
    case ::onnx::TensorProto::INT32: as_integers(read_values.template operator()<std::int32_t>(t.int32_data())); break;
    case ::onnx::TensorProto::INT8: as_integers(read_values.template operator()<std::int8_t>(t.int32_data())); break;
    case ::onnx::TensorProto::UINT8: as_integers(read_values.template operator()<std::uint8_t>(t.int32_data())); break;
    default:
        throw file_error(path, what + " has data type " + ::onnx::TensorProto_DataType_Name(t.data_type()) +
                                   "; vgg reads FLOAT weights, INT64 shapes, and a quantised model's INT8, UINT8 "
                                   "and INT32 codes");
    }
    return tensor;
}

/// DequantizeLinear(codes, scale, zero_point) of a constant: (code - zero point) x scale, with a
/// scale and zero point per index along `axis` or one for all. `what` names the node in errors.
inline onnx_tensor dequantize_constant(const onnx_tensor& codes, const std::string& codes_name,
                                       const onnx_tensor& scale, const onnx_tensor* zero_point, std::int64_t axis,
                                       const std::string& what, const std::filesystem::path& path)
{
    const auto type = ::onnx::TensorProto_DataType_Name(codes.type);
    if (codes.type != ::onnx::TensorProto::INT8 && codes.type != ::onnx::TensorProto::UINT8 &&
        codes.type != ::onnx::TensorProto::INT32)
        throw file_error(path, what + " dequantises \"" + codes_name + "\" of type " + type +
                                   "; vgg reads INT8, UINT8 and INT32 codes");
    const std::size_t channels = scale.floats.size();
    if (!scale.is_float || channels == 0 || (zero_point && zero_point->integers.size() != channels))
        throw file_error(path, what + " needs a FLOAT scale and as many zero points as scales");
    const auto rank = std::int64_t(codes.dims.size());
    axis = axis < 0 ? axis + rank : axis;
    std::size_t inner = 1;
    if (channels > 1) {
        if (axis < 0 || axis >= rank || codes.dims[std::size_t(axis)] != std::int64_t(channels))
            throw file_error(path, what + " has " + std::to_string(channels) + " scales along axis " +
                                       std::to_string(axis) + " of \"" + codes_name + "\", whose dimensions are " +
                                       ints_text(codes.dims));
        for (auto d = std::size_t(axis) + 1; d < codes.dims.size(); ++d)
            inner *= std::size_t(codes.dims[d]);
    }
    onnx_tensor values{codes.dims, std::vector<float>(codes.integers.size()), {}, true};
    std::vector<std::int64_t> zero_points(channels, 0);
    if (zero_point)
        zero_points = zero_point->integers;
    for (std::size_t i = 0; i < values.floats.size(); ++i) {
        const std::size_t c = (i / inner) % channels;
        values.floats[i] = float(codes.integers[i] - zero_points[c]) * scale.floats[c];
    }
    values.dequantised = onnx_dequantisation{codes_name, &codes, scale.floats, std::move(zero_points), axis};
    return values;
}

inline const ::onnx::AttributeProto* find_attribute(const ::onnx::NodeProto& node, std::string_view name)
{
    for (const auto& a : node.attribute())
        if (a.name() == name)
            return &a;
    return nullptr;
}

} // namespace vgg::io::detail
