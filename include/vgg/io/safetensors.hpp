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
/// in `values`, integer ones (I64, I32: batch norm's num_batches_tracked) in `integers`.
struct stored_tensor {
    std::vector<std::size_t> shape;
    std::vector<float> values;
    std::string dtype = "F32";
    std::vector<std::int64_t> integers;
    bool is_integer() const { return dtype == "I64" || dtype == "I32"; }
};

/// Everything a safetensors file holds.
struct safetensors_content {
    std::map<std::string, stored_tensor> tensors;
    std::map<std::string, std::string> metadata;
};

/// A named tensor to write: a view of float data, its shape, and how the data lays it out
/// (written in the order of the shape either way).
struct tensor_to_write {
    std::string name;
    std::vector<std::size_t> shape;
    std::span<const float> values;
    storage_order order = storage_order::as_shape;
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
    return 0;
}

/// Reads an unsigned integer from the header, or explains why it is not one.
inline std::uint64_t header_count(const std::filesystem::path& path, const nlohmann::json& value, const std::string& what)
{
    if (!value.is_number_unsigned())
        throw file_error(path, what + " is not a non-negative integer");
    return value.get<std::uint64_t>();
}

} // namespace detail

/// Decodes and checks the bytes of a whole safetensors file; errors name `path`. Every length
/// and offset in the header is checked against the bytes before any data is touched; tensors must
/// tile the data section exactly, as the format requires. F32, F16 and BF16 are accepted and
/// converted to float; I64 and I32 are read as integers.
inline safetensors_content decode_safetensors(std::string_view bytes, const std::filesystem::path& path)
{
    if (bytes.size() < 8)
        throw file_error(path, "not a safetensors file: " + std::to_string(bytes.size()) + " bytes, shorter than the 8-byte header length");
    std::uint64_t header_length;
    std::memcpy(&header_length, bytes.data(), 8);
    if (header_length > bytes.size() - 8)
        throw file_error(path, "truncated or not a safetensors file: header length " + std::to_string(header_length) +
                                   " exceeds the " + std::to_string(bytes.size() - 8) + " bytes that follow");
    // nlohmann keeps the last of a repeated key without a word: a header naming a tensor twice
    // could load other bytes than its writer meant, so a repeated key is refused.
    std::vector<std::set<std::string>> open_objects;
    std::string repeated;
    const nlohmann::json::parser_callback_t watch_keys = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
        using event_t = nlohmann::json::parse_event_t;
        if (event == event_t::object_start)
            open_objects.emplace_back();
        else if (event == event_t::object_end)
            open_objects.pop_back();
        else if (event == event_t::key && !open_objects.back().insert(parsed.get<std::string>()).second && repeated.empty())
            repeated = parsed.get<std::string>();
        return true;
    };
    const auto header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header_length),
                                              watch_keys, false);
    if (header.is_discarded() || !header.is_object())
        throw file_error(path, "the safetensors header is not a JSON object");
    if (!repeated.empty())
        throw file_error(path, "the safetensors header names \"" + repeated + "\" twice (a JSON object with a repeated key)");
    const std::size_t data_begin = 8 + header_length, data_size = bytes.size() - data_begin;

    safetensors_content content;
    struct extent {
        std::uint64_t begin, end;
        std::string name;
    };
    std::vector<extent> extents;
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
        const std::string where = "tensor \"" + name + "\"";
        if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets"))
            throw file_error(path, where + " needs dtype, shape and data_offsets");
        if (!entry["dtype"].is_string())
            throw file_error(path, where + ": dtype is not a string");
        const std::string dtype = entry["dtype"].get<std::string>();
        const std::size_t element_size = detail::dtype_size(dtype);
        if (element_size == 0)
            throw file_error(path, where + " has dtype " + dtype + "; only F32, F16, BF16, I64 and I32 can be read");
        const auto& shape = entry["shape"];
        const auto& offsets = entry["data_offsets"];
        if (!shape.is_array())
            throw file_error(path, where + ": shape is not an array");
        if (!offsets.is_array() || offsets.size() != 2)
            throw file_error(path, where + ": data_offsets is not a pair [begin, end]");
        stored_tensor tensor;
        std::uint64_t count = 1;
        for (const auto& dimension : shape) {
            const auto d = detail::header_count(path, dimension, where + ": a shape entry");
            if (d != 0 && count > (std::uint64_t(1) << 40) / d)
                throw file_error(path, where + " has an impossibly large shape");
            count *= d;
            tensor.shape.push_back(static_cast<std::size_t>(d));
        }
        const auto begin = detail::header_count(path, offsets[0], where + ": data_offsets[0]");
        const auto end = detail::header_count(path, offsets[1], where + ": data_offsets[1]");
        if (begin > end || end > data_size)
            throw file_error(path, where + " has data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                                       "] outside the " + std::to_string(data_size) + " bytes of data");
        if (end - begin != count * element_size)
            throw file_error(path, where + " has " + std::to_string(end - begin) + " bytes of data, but its shape and dtype need " +
                                       std::to_string(count * element_size));
        extents.push_back({begin, end, name});
        const char* data = bytes.data() + data_begin + begin;
        tensor.dtype = dtype;
        if (tensor.is_integer()) {
            tensor.integers.resize(count);
            for (std::size_t i = 0; i < count; ++i) {
                if (element_size == 8) {
                    std::memcpy(&tensor.integers[i], data + 8 * i, 8);
                } else {
                    std::int32_t value;
                    std::memcpy(&value, data + 4 * i, 4);
                    tensor.integers[i] = value;
                }
            }
            content.tensors.emplace(name, std::move(tensor));
            continue;
        }
        tensor.values.resize(count);
        for (std::size_t i = 0; i < count; ++i) {
            if (element_size == 4) {
                std::memcpy(&tensor.values[i], data + 4 * i, 4);
            } else {
                std::uint16_t bits;
                std::memcpy(&bits, data + 2 * i, 2);
                tensor.values[i] = dtype == "F16" ? detail::half_to_float(bits) : detail::bfloat16_to_float(bits);
            }
        }
        content.tensors.emplace(name, std::move(tensor));
    }
    std::sort(extents.begin(), extents.end(), [](const extent& a, const extent& b) { return a.begin < b.begin || (a.begin == b.begin && a.end < b.end); });
    std::uint64_t expected = 0;
    for (const auto& e : extents) {
        if (e.begin != expected)
            throw file_error(path, "tensor \"" + e.name + "\" " + (e.begin < expected ? "overlaps another tensor" : "leaves a gap before it") +
                                       " in the data section");
        expected = e.end;
    }
    if (expected != data_size)
        throw file_error(path, std::to_string(data_size - expected) + " bytes after the last tensor belong to no tensor");
    return content;
}

/// Reads and checks a whole safetensors file (see decode_safetensors).
inline safetensors_content read_safetensors(const std::filesystem::path& path)
{
    const auto bytes = read_file_bytes(path);
    return decode_safetensors({reinterpret_cast<const char*>(bytes.data()), bytes.size()}, path);
}

/// Writes tensors as F32 in the given order, atomically (see write_file_atomically).
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
        if (count != t.values.size())
            throw file_error(path, "tensor \"" + t.name + "\" has " + std::to_string(t.values.size()) +
                                       " values but its shape needs " + std::to_string(count));
        if (t.order == storage_order::transposed && t.shape.size() != 2)
            throw file_error(path, "tensor \"" + t.name + "\" is stored transposed but is not a matrix");
        header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + 4 * count}}};
        offset += 4 * count;
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

/// The name of the first parameter holding a NaN or an infinity, or "" when all are finite.
template <class Net>
std::string first_non_finite_parameter(Net& net)
{
    VGG_REQUIRE_NETWORK(Net, "first_non_finite_parameter(net)");
    std::string found;
    net.visit_parameters([&](const parameter_view& p) {
        if (found.empty() && !std::all_of(p.value.begin(), p.value.end(), [](float v) { return std::isfinite(v); }))
            found = p.name;
    });
    return found;
}

/// The network's parameters as tensors to write to `path`, under their PyTorch state_dict
/// names. A NaN or infinite parameter is an error: no file is written (a diverged network
/// must not replace good weights).
template <class Net>
std::vector<tensor_to_write> finite_parameter_tensors(Net& net, const std::filesystem::path& path)
{
    if (const auto bad = first_non_finite_parameter(net); !bad.empty())
        throw file_error(path, "not written: parameter \"" + bad + "\" holds a NaN or an infinity");
    std::vector<tensor_to_write> tensors;
    net.visit_parameters([&](const parameter_view& p) { tensors.push_back({p.name, p.shape, p.value, p.order}); });
    return tensors;
}

/// Saves a network's parameters, named as the seed's PyTorch state_dict() names them. A
/// network with a NaN or infinite parameter is refused and the file left as it was.
template <class Net>
void save_weights(Net& net, const std::filesystem::path& path, const std::map<std::string, std::string>& metadata = {})
{
    VGG_REQUIRE_NETWORK(Net, "save_weights(net, path)");
    write_safetensors(path, finite_parameter_tensors(net, path), metadata);
}

/// "[3, 64, 3, 3]".
inline std::string shape_text(const std::vector<std::size_t>& shape)
{
    std::string text = "[";
    for (std::size_t i = 0; i < shape.size(); ++i)
        text += (i ? ", " : "") + std::to_string(shape[i]);
    return text + "]";
}

/// How load_weights matches a file to a network.
struct load_options {
    /// Every selected parameter must be in the file with its shape, and every tensor of the file
    /// must be a parameter of the network: any difference is an error (file_error), as PyTorch's
    /// load_state_dict(strict=True). Not strict: the tensors whose names and shapes match are
    /// loaded and the rest is reported (load_report), as load_state_dict(strict=False).
    bool strict = true;
    /// The parameters to load (by name; all when empty). The others keep their values and are
    /// neither missing nor unexpected.
    std::function<bool(const std::string&)> select;
    /// Tensors whose names start with this are not the network's and not unexpected (a
    /// checkpoint keeps its optimiser state that way).
    std::string extra_prefix;

    /// A load that takes what fits and reports the rest, of the parameters `select` selects (all
    /// when empty): load_options::non_strict(io::names_starting_with("features.")).
    static load_options non_strict(std::function<bool(const std::string&)> select = {})
    {
        load_options options;
        options.strict = false;
        options.select = std::move(select);
        return options;
    }
};

/// load_options::select for the parameters whose names start with `prefix` ("features.").
inline std::function<bool(const std::string&)> names_starting_with(std::string prefix)
{
    return [prefix = std::move(prefix)](const std::string& name) { return name.rfind(prefix, 0) == 0; };
}

/// What load_weights did, as load_state_dict(strict=False) reports it, with the shapes of the
/// tensors that did not fit.
struct load_report {
    struct mismatch {
        std::string name, file_dtype;
        std::vector<std::size_t> file_shape, network_shape;
    };
    /// Parameters (and buffers) copied from the file.
    std::vector<std::string> loaded;
    /// Selected parameters the file does not hold: they keep their values.
    std::vector<std::string> missing;
    /// Tensors of the file that are no parameter of the network.
    std::vector<std::string> unexpected;
    /// Tensors named as a selected parameter with another shape, or integers for a float parameter.
    std::vector<mismatch> mismatched;
    /// Parameters not selected, left as they were.
    std::vector<std::string> not_selected;
    /// Batch norm's num_batches_tracked counters, checked (a non-negative integer) and not kept:
    /// this BatchNorm2d has a fixed momentum, so the count changes nothing.
    std::vector<std::string> counters;

    /// Whether every selected parameter was loaded and the file held nothing else.
    bool complete() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }

    /// A summary for people: "loaded 32 tensors; missing: ...; unexpected: ...; shape mismatch:
    /// classifier.6.weight is [1000, 4096] in the file, [5, 4096] in the network".
    std::string text() const
    {
        const auto list = [](const std::vector<std::string>& names) {
            std::string text;
            for (const auto& name : names)
                text += (text.empty() ? "" : ", ") + name;
            return text;
        };
        std::string text = "loaded " + std::to_string(loaded.size()) + " tensors";
        if (!not_selected.empty())
            text += ", left " + std::to_string(not_selected.size()) + " unselected as they were";
        if (!counters.empty())
            text += ", ignored " + std::to_string(counters.size()) + " num_batches_tracked counters";
        if (!missing.empty())
            text += "; missing from the file: " + list(missing);
        if (!unexpected.empty())
            text += "; not in the network: " + list(unexpected);
        for (const auto& m : mismatched)
            text += "; " + m.name + " is " + (m.file_dtype == "F32" || m.file_dtype == "F16" || m.file_dtype == "BF16" ? "" : m.file_dtype + " ") +
                    shape_text(m.file_shape) + " in the file, " + shape_text(m.network_shape) + " in the network";
        return text;
    }
};

/// Copies the network's parameters from `content` (read from `source`, which errors name) as
/// `options` say, and reports what it did. Values must be finite; a strict load throws
/// io::file_error at the first difference between file and network. All checks pass before the
/// first value is copied, so a failed load leaves the network as it was.
template <class Net>
load_report load_weights(Net& net, const safetensors_content& content, const std::filesystem::path& source,
                         const load_options& options)
{
    VGG_REQUIRE_NETWORK(Net, "load_weights(net, ...)");
    load_report report;
    std::set<std::string> parameters, running_means, taken;
    net.visit_parameters([&](const parameter_view& p) {
        parameters.insert(p.name);
        if (p.name.size() >= 12 && p.name.ends_with("running_mean"))
            running_means.insert(p.name.substr(0, p.name.size() - 12));
        if (options.select && !options.select(p.name)) {
            report.not_selected.push_back(p.name);
            return;
        }
        const auto found = content.tensors.find(p.name);
        if (found == content.tensors.end()) {
            if (options.strict)
                throw file_error(source, "tensor \"" + p.name + "\" " + shape_text(p.shape) + " is missing (is this a checkpoint of another architecture?)");
            report.missing.push_back(p.name);
            return;
        }
        const stored_tensor& tensor = found->second;
        if (tensor.shape != p.shape || tensor.is_integer()) {
            if (options.strict)
                throw file_error(source, "tensor \"" + p.name + "\" has " +
                                             (tensor.is_integer() ? "dtype " + tensor.dtype + ", not a floating-point one, and shape " : "shape ") +
                                             shape_text(tensor.shape) + ", but this network needs " + shape_text(p.shape));
            report.mismatched.push_back({p.name, tensor.dtype, tensor.shape, p.shape});
            return;
        }
        const auto bad = std::find_if(tensor.values.begin(), tensor.values.end(), [](float v) { return !std::isfinite(v); });
        if (bad != tensor.values.end())
            throw file_error(source, "tensor \"" + p.name + "\" holds " + std::to_string(*bad) + " at index " +
                                         std::to_string(bad - tensor.values.begin()) + ": weights must be finite");
        report.loaded.push_back(p.name);
        taken.insert(p.name);
    });
    for (const auto& [name, tensor] : content.tensors) {
        if (parameters.count(name) || (!options.extra_prefix.empty() && name.rfind(options.extra_prefix, 0) == 0))
            continue;
        constexpr std::string_view counter = "num_batches_tracked";
        if (name.ends_with(counter) && running_means.count(name.substr(0, name.size() - counter.size()))) {
            if (!tensor.is_integer() || tensor.integers.size() != 1 || tensor.integers[0] < 0)
                throw file_error(source, "tensor \"" + name + "\" should be batch norm's count of batches, one non-negative integer, but is " +
                                             tensor.dtype + " " + shape_text(tensor.shape) +
                                             (tensor.integers.size() == 1 ? " holding " + std::to_string(tensor.integers[0]) : ""));
            report.counters.push_back(name);
            continue;
        }
        if (options.strict)
            throw file_error(source, "tensor \"" + name + "\" " + shape_text(tensor.shape) + " is not a parameter of this network");
        report.unexpected.push_back(name);
    }
    net.visit_parameters([&](const parameter_view& p) {
        if (taken.count(p.name))
            copy_from_shape_order(p.shape, p.order, content.tensors.at(p.name).values, p.value.data());
    });
    return report;
}

/// A strict load: every parameter must be present with its exact shape and finite values; any
/// other tensor is an error unless its name starts with `extra_prefix` (a checkpoint keeps
/// optimiser state that way), or is a batch norm's num_batches_tracked.
template <class Net>
void load_weights(Net& net, const safetensors_content& content, const std::filesystem::path& source,
                  const std::string& extra_prefix = {})
{
    load_options options;
    options.extra_prefix = extra_prefix;
    load_weights(net, content, source, options);
}

/// Reads `path` and loads it strictly (see above).
template <class Net>
void load_weights(Net& net, const std::filesystem::path& path)
{
    load_weights(net, read_safetensors(path), path);
}

/// Reads `path` and loads it as `options` say, returning the report.
template <class Net>
load_report load_weights(Net& net, const std::filesystem::path& path, const load_options& options)
{
    return load_weights(net, read_safetensors(path), path, options);
}

} // namespace vgg::io
