#pragma once
// Values read out of an ONNX model's protobuf messages: tensors (initializers, Constant values)
// and node attributes.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <onnx/onnx_pb.h>

#include "vgg/io/error.hpp"

namespace vgg::io::detail {

/// An initializer or a Constant's value, as float (weights) or int64 (shapes).
struct onnx_tensor {
    std::vector<std::int64_t> dims;
    std::vector<float> floats;
    std::vector<std::int64_t> integers;
    bool is_float = false;
};

inline std::string ints_text(const std::vector<std::int64_t>& values)
{
    std::string text = "[";
    for (std::size_t i = 0; i < values.size(); ++i)
        text += (i ? ", " : "") + std::to_string(values[i]);
    return text + "]";
}

/// Reads a TensorProto of type FLOAT or INT64, from raw_data or the typed field.
inline onnx_tensor read_onnx_tensor(const ::onnx::TensorProto& t, const std::string& what,
                                    const std::filesystem::path& path)
{
    if (t.data_location() == ::onnx::TensorProto::EXTERNAL || t.external_data_size() > 0)
        throw file_error(path, what + " keeps its data in an external file, which vgg does not read (save the model "
                                      "with its weights inside)");
    onnx_tensor tensor;
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
    if (t.data_type() == ::onnx::TensorProto::INT64) {
        tensor.integers = read_values.template operator()<std::int64_t>(t.int64_data());
        return tensor;
    }
    throw file_error(path, what + " has data type " + ::onnx::TensorProto_DataType_Name(t.data_type()) +
                               "; vgg reads FLOAT weights (and INT64 shapes)");
}

inline const ::onnx::AttributeProto* find_attribute(const ::onnx::NodeProto& node, std::string_view name)
{
    for (const auto& a : node.attribute())
        if (a.name() == name)
            return &a;
    return nullptr;
}

} // namespace vgg::io::detail
