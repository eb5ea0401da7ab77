#pragma once
// A network's weights in safetensors files (safetensors_file.hpp): saved under the names its
// parameters carry, loaded strictly or with a selection and a report, as PyTorch's
// load_state_dict(strict=...) does.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <map>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "vgg/core/layer.hpp"
#include "vgg/io/error.hpp"
#include "vgg/io/safetensors_file.hpp"

namespace vgg::io {

/// The "format" metadata of an int8 network's file (vgg::int8::quantized_network::save), which
/// holds s8 weights and scales, not a network's fp32 parameters.
inline constexpr const char* int8_network_format = "vgg int8 network";

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
            text +=
                "; " + m.name + " is " +
                (m.file_dtype == "F32" || m.file_dtype == "F16" || m.file_dtype == "BF16" ? "" : m.file_dtype + " ") +
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
    if (const auto format = content.metadata.find("format");
        format != content.metadata.end() && format->second == int8_network_format)
        throw file_error(source, "is an int8 network, not fp32 weights: load it as "
                                 "vgg::int8::quantized_network<Net>(path)");
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
                throw file_error(source, "tensor \"" + p.name + "\" " + shape_text(p.shape) +
                                             " is missing (is this a checkpoint of another architecture?)");
            report.missing.push_back(p.name);
            return;
        }
        const stored_tensor& tensor = found->second;
        if (tensor.shape != p.shape || tensor.is_integer()) {
            if (options.strict)
                throw file_error(source, "tensor \"" + p.name + "\" has " +
                                             (tensor.is_integer()
                                                  ? "dtype " + tensor.dtype + ", not a floating-point one, and shape "
                                                  : "shape ") +
                                             shape_text(tensor.shape) + ", but this network needs " +
                                             shape_text(p.shape));
            report.mismatched.push_back({p.name, tensor.dtype, tensor.shape, p.shape});
            return;
        }
        const auto bad =
            std::find_if(tensor.values.begin(), tensor.values.end(), [](float v) { return !std::isfinite(v); });
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
                throw file_error(
                    source, "tensor \"" + name +
                                "\" should be batch norm's count of batches, one non-negative integer, but is " +
                                tensor.dtype + " " + shape_text(tensor.shape) +
                                (tensor.integers.size() == 1 ? " holding " + std::to_string(tensor.integers[0]) : ""));
            report.counters.push_back(name);
            continue;
        }
        if (options.strict)
            throw file_error(source, "tensor \"" + name + "\" " + shape_text(tensor.shape) +
                                         " is not a parameter of this network");
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
