#pragma once
// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON, then the raw little-endian tensor data. The JSON maps each
// tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into the data), plus
// an optional "__metadata__" of string pairs.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "vgg/core/layer.hpp"
#include "vgg/io/atomic_file.hpp"
#include "vgg/io/error.hpp"
#include "vgg/io/read_file.hpp"

namespace vgg::io {

static_assert(std::endian::native == std::endian::little,
              "vgg's safetensors code reads and writes little-endian data in place, so it needs a little-endian host.");

/// One tensor of a safetensors file: floating-point dtypes (F32, F16, BF16) converted to float
/// in `values`, I64 and I32 (batch norm's num_batches_tracked) in `integers`, I8 (an int8
/// network's weights) in `int8_values`.
struct stored_tensor {
    std::vector<std::size_t> shape;
    std::vector<float> values;
    std::string dtype = "F32";
    std::vector<std::int64_t> integers;
    std::vector<std::int8_t> int8_values{};
    bool is_integer() const { return dtype == "I64" || dtype == "I32" || dtype == "I8"; }
};

/// Everything a safetensors file holds.
struct safetensors_content {
    std::map<std::string, stored_tensor> tensors;
    std::map<std::string, std::string> metadata;
};

/// A named tensor to write: a view of float data, its shape, and how the data lays it out
/// (written in the order of the shape either way); or, when `int8_values` is not empty, I8 data
/// in the order of the shape.
struct tensor_to_write {
    std::string name;
    std::vector<std::size_t> shape;
    std::span<const float> values{};
    storage_order order = storage_order::as_shape;
    std::span<const std::int8_t> int8_values{};

    bool is_int8() const { return !int8_values.empty(); }
    std::size_t count() const { return is_int8() ? int8_values.size() : values.size(); }
    std::size_t element_size() const { return is_int8() ? 1 : 4; }
};

namespace detail {

inline float half_to_float(std::uint16_t h)
{
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
    float magnitude;
    if (exponent == 0)
        magnitude = std::ldexp(static_cast<float>(mantissa), -24); // zero or subnormal
    else if (exponent == 31)
        magnitude = mantissa ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
    else
        magnitude = std::ldexp(static_cast<float>(mantissa | 0x400u), static_cast<int>(exponent) - 25);
    return sign ? -magnitude : magnitude;
}

inline float bfloat16_to_float(std::uint16_t b) { return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16); }

inline std::size_t dtype_size(const std::string& dtype)
{
    if (dtype == "I64")
        return 8;
    if (dtype == "F32" || dtype == "I32")
        return 4;
    if (dtype == "F16" || dtype == "BF16")
        return 2;
    if (dtype == "I8")
        return 1;
    return 0;
}

/// Reads an unsigned integer from the header, or explains why it is not one.
inline std::uint64_t header_count(const std::filesystem::path& path, const nlohmann::json& value,
                                  const std::string& what)
{
    if (!value.is_number_unsigned())
        throw file_error(path, what + " is not a non-negative integer");
    return value.get<std::uint64_t>();
}

} // namespace detail

namespace detail {

/// The JSON header of a safetensors file, after its length is checked against the bytes; where
/// the data section begins in `data_begin`.
inline nlohmann::json safetensors_header(std::string_view bytes, const std::filesystem::path& path,
                                         std::size_t& data_begin)
{
    if (bytes.size() < 8)
        throw file_error(path, "not a safetensors file: " + std::to_string(bytes.size()) +
                                   " bytes, shorter than the 8-byte header length");
    std::uint64_t header_length;
    std::memcpy(&header_length, bytes.data(), 8);
    if (header_length > bytes.size() - 8)
        throw file_error(path, "truncated or not a safetensors file: header length " + std::to_string(header_length) +
                                   " exceeds the " + std::to_string(bytes.size() - 8) + " bytes that follow");
    // nlohmann keeps the last of a repeated key without a word: a header naming a tensor twice
    // could load other bytes than its writer meant, so a repeated key is refused.
    std::vector<std::set<std::string>> open_objects;
    std::string repeated;
    const nlohmann::json::parser_callback_t watch_keys = [&](int, nlohmann::json::parse_event_t event,
                                                             nlohmann::json& parsed) {
        using event_t = nlohmann::json::parse_event_t;
        if (event == event_t::object_start)
            open_objects.emplace_back();
        else if (event == event_t::object_end)
            open_objects.pop_back();
        else if (event == event_t::key && !open_objects.back().insert(parsed.get<std::string>()).second &&
                 repeated.empty())
            repeated = parsed.get<std::string>();
        return true;
    };
    auto header = nlohmann::json::parse(
        bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header_length), watch_keys, false);
    if (header.is_discarded() || !header.is_object())
        throw file_error(path, "the safetensors header is not a JSON object");
    if (!repeated.empty())
        throw file_error(path,
                         "the safetensors header names \"" + repeated + "\" twice (a JSON object with a repeated key)");
    data_begin = 8 + header_length;
    return header;
}

/// The bytes [begin, end) of the data section one tensor takes.
struct extent {
    std::uint64_t begin, end;
    std::string name;
};

/// Tensor `name` of a header, its values read from `data` (the data section, data_size bytes);
/// its bytes in `taken`.
inline stored_tensor decode_tensor(const std::filesystem::path& path, const std::string& name,
                                   const nlohmann::json& entry, const char* data, std::size_t data_size, extent& taken)
{
    const std::string where = "tensor \"" + name + "\"";
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets"))
        throw file_error(path, where + " needs dtype, shape and data_offsets");
    if (!entry["dtype"].is_string())
        throw file_error(path, where + ": dtype is not a string");
    stored_tensor tensor;
    tensor.dtype = entry["dtype"].get<std::string>();
    const std::size_t element_size = dtype_size(tensor.dtype);
    if (element_size == 0)
        throw file_error(path,
                         where + " has dtype " + tensor.dtype + "; only F32, F16, BF16, I64, I32 and I8 can be read");
    const auto& shape = entry["shape"];
    const auto& offsets = entry["data_offsets"];
    if (!shape.is_array())
        throw file_error(path, where + ": shape is not an array");
    if (!offsets.is_array() || offsets.size() != 2)
        throw file_error(path, where + ": data_offsets is not a pair [begin, end]");
    std::uint64_t count = 1;
    for (const auto& dimension : shape) {
        const auto d = header_count(path, dimension, where + ": a shape entry");
        if (d != 0 && count > (std::uint64_t(1) << 40) / d)
            throw file_error(path, where + " has an impossibly large shape");
        count *= d;
        tensor.shape.push_back(static_cast<std::size_t>(d));
    }
    const auto begin = header_count(path, offsets[0], where + ": data_offsets[0]");
    const auto end = header_count(path, offsets[1], where + ": data_offsets[1]");
    if (begin > end || end > data_size)
        throw file_error(path, where + " has data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                                   "] outside the " + std::to_string(data_size) + " bytes of data");
    if (end - begin != count * element_size)
        throw file_error(path, where + " has " + std::to_string(end - begin) +
                                   " bytes of data, but its shape and dtype need " +
                                   std::to_string(count * element_size));
    taken = {begin, end, name};
    const char* bytes = data + begin;
    if (tensor.dtype == "I8") {
        tensor.int8_values.resize(count);
        std::memcpy(tensor.int8_values.data(), bytes, count);
        return tensor;
    }
    if (tensor.is_integer()) {
        tensor.integers.resize(count);
        for (std::size_t i = 0; i < count; ++i) {
            if (element_size == 8) {
                std::memcpy(&tensor.integers[i], bytes + 8 * i, 8);
            } else {
                std::int32_t value;
                std::memcpy(&value, bytes + 4 * i, 4);
                tensor.integers[i] = value;
            }
        }
        return tensor;
    }
    tensor.values.resize(count);
    for (std::size_t i = 0; i < count; ++i) {
        if (element_size == 4) {
            std::memcpy(&tensor.values[i], bytes + 4 * i, 4);
        } else {
            std::uint16_t bits;
            std::memcpy(&bits, bytes + 2 * i, 2);
            tensor.values[i] = tensor.dtype == "F16" ? half_to_float(bits) : bfloat16_to_float(bits);
        }
    }
    return tensor;
}

/// Checks that the tensors tile the data section exactly, as the format requires.
inline void check_tiling(std::vector<extent> extents, std::size_t data_size, const std::filesystem::path& path)
{
    std::sort(extents.begin(), extents.end(), [](const extent& a, const extent& b) {
        return a.begin < b.begin || (a.begin == b.begin && a.end < b.end);
    });
    std::uint64_t expected = 0;
    for (const auto& e : extents) {
        if (e.begin != expected)
            throw file_error(path, "tensor \"" + e.name + "\" " +
                                       (e.begin < expected ? "overlaps another tensor" : "leaves a gap before it") +
                                       " in the data section");
        expected = e.end;
    }
    if (expected != data_size)
        throw file_error(path,
                         std::to_string(data_size - expected) + " bytes after the last tensor belong to no tensor");
}

} // namespace detail

/// Decodes and checks the bytes of a whole safetensors file; errors name `path`. Every length
/// and offset in the header is checked against the bytes before any data is touched; tensors must
/// tile the data section exactly, as the format requires. F32, F16 and BF16 are accepted and
/// converted to float; I64, I32 and I8 are read as integers.
inline safetensors_content decode_safetensors(std::string_view bytes, const std::filesystem::path& path)
{
    std::size_t data_begin = 0;
    const nlohmann::json header = detail::safetensors_header(bytes, path, data_begin);
    const std::size_t data_size = bytes.size() - data_begin;
    safetensors_content content;
    std::vector<detail::extent> extents;
    for (const auto& [name, entry] : header.items()) {
        if (name == "__metadata__") {
            if (!entry.is_object())
                throw file_error(path, "__metadata__ is not a JSON object");
            for (const auto& [key, value] : entry.items()) {
                if (!value.is_string())
                    throw file_error(path, "metadata \"" + key + "\" is not a string");
                content.metadata[key] = value.get<std::string>();
            }
            continue;
        }
        extents.emplace_back();
        content.tensors.emplace(
            name, detail::decode_tensor(path, name, entry, bytes.data() + data_begin, data_size, extents.back()));
    }
    detail::check_tiling(std::move(extents), data_size, path);
    return content;
}

/// Reads and checks a whole safetensors file (see decode_safetensors).
inline safetensors_content read_safetensors(const std::filesystem::path& path)
{
    const auto bytes = read_file_bytes(path);
    return decode_safetensors({reinterpret_cast<const char*>(bytes.data()), bytes.size()}, path);
}

/// Writes tensors (F32, or I8) in the given order, atomically (see write_file_atomically).
inline void write_safetensors(const std::filesystem::path& path, const std::vector<tensor_to_write>& tensors,
                              const std::map<std::string, std::string>& metadata = {})
{
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty())
        header["__metadata__"] = metadata;
    std::uint64_t offset = 0;
    std::set<std::string> names;
    for (const auto& t : tensors) {
        if (!names.insert(t.name).second)
            throw file_error(path, "two tensors named \"" + t.name + "\"");
        std::size_t count = 1;
        for (auto d : t.shape)
            count *= d;
        if (count != t.count())
            throw file_error(path, "tensor \"" + t.name + "\" has " + std::to_string(t.count()) +
                                       " values but its shape needs " + std::to_string(count));
        if (t.order == storage_order::transposed && (t.shape.size() != 2 || t.is_int8()))
            throw file_error(path, "tensor \"" + t.name + "\" is stored transposed but is not an F32 matrix");
        const std::uint64_t size = t.element_size() * count;
        header[t.name] = {
            {"dtype", t.is_int8() ? "I8" : "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + size}}};
        offset += size;
    }
    std::string json = header.dump();
    json.append((8 - json.size() % 8) % 8, ' '); // keeps the data 8-byte aligned, as the format recommends
    std::string bytes(8, '\0');
    const std::uint64_t header_length = json.size();
    std::memcpy(bytes.data(), &header_length, 8);
    bytes += json;
    bytes.reserve(bytes.size() + offset);
    std::vector<float> in_shape_order;
    for (const auto& t : tensors) {
        if (t.is_int8()) {
            bytes.append(reinterpret_cast<const char*>(t.int8_values.data()), t.int8_values.size());
            continue;
        }
        std::span<const float> values = t.values;
        if (t.order == storage_order::transposed) {
            in_shape_order.resize(values.size());
            copy_in_shape_order(t.shape, t.order, values, in_shape_order.data());
            values = in_shape_order;
        }
        bytes.append(reinterpret_cast<const char*>(values.data()), values.size_bytes());
    }
    write_file_atomically(path, bytes);
}

} // namespace vgg::io
