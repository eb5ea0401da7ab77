#pragma once
#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vgg/io/safetensors.hpp"
#include "vgg/train/optimizer.hpp"

namespace vgg {

/// Prefix of the optimiser's tensors inside a checkpoint, beside the network's own:
/// "optimizer.<state name>.<parameter name>" ("optimizer.momentum_buffer.0.0.weight").
inline const std::string optimizer_prefix = "optimizer.";

using io::first_non_finite_parameter;

namespace detail {

/// Reads a whole non-negative number from checkpoint metadata, or explains what is wrong.
inline std::size_t metadata_count(const std::string& text, const std::filesystem::path& path, const std::string& what)
{
    std::size_t value = 0;
    const auto parsed = std::from_chars(text.data(), text.data() + text.size(), value);
    if (parsed.ec != std::errc() || parsed.ptr != text.data() + text.size())
        throw io::file_error(path, what + " \"" + text + "\" is not a whole number");
    return value;
}

} // namespace detail

/// Saves the network, the optimiser's state (its buffers as "optimizer.<state name>.<parameter
/// name>", its kind and step counts as metadata) and `metadata` (epoch, seed, ...) in one
/// safetensors file, written atomically: a crash leaves the previous checkpoint in place. A
/// network with a NaN or infinite parameter is refused, so a diverged run cannot replace a good
/// checkpoint. State of frozen parameters is kept as it is.
template <class Net, optimizer Optimizer>
void save_checkpoint(Net& net, Optimizer& optimiser, const std::filesystem::path& path,
                     std::map<std::string, std::string> metadata)
{
    VGG_REQUIRE_NETWORK(Net, "save_checkpoint(net, ...)");
    auto tensors = io::finite_parameter_tensors(net, path);
    const auto names = optimiser.state_names();
    nlohmann::ordered_json parameter_steps = nlohmann::ordered_json::object();
    bool steps_differ = false;
    net.visit_parameters([&](const parameter_view& p) {
        const auto found = optimiser.state().find(p.name);
        if (found == optimiser.state().end() || found->second.buffers.empty())
            return;
        for (std::size_t k = 0; k < found->second.buffers.size(); ++k)
            tensors.push_back(
                {optimizer_prefix + names.at(k) + "." + p.name, p.shape, found->second.buffers[k], p.order});
        parameter_steps[p.name] = found->second.steps;
        steps_differ = steps_differ || found->second.steps != optimiser.steps();
    });
    metadata["optimizer_steps"] = std::to_string(optimiser.steps());
    if (Optimizer::kind != "sgd")
        metadata["optimizer"] = std::string(Optimizer::kind);
    if (steps_differ) // otherwise every parameter took all the steps
        metadata["optimizer_parameter_steps"] = parameter_steps.dump();
    io::write_safetensors(path, tensors, metadata);
}

/// Loads what save_checkpoint wrote (read from `path` into `content`) into `net` and
/// `optimiser`, which must be of the checkpoint's kind. Nothing is changed unless the whole
/// checkpoint checks out.
template <class Net, optimizer Optimizer>
void load_checkpoint(Net& net, Optimizer& optimiser, const io::safetensors_content& content,
                     const std::filesystem::path& path)
{
    VGG_REQUIRE_NETWORK(Net, "load_checkpoint(net, ...)");
    const auto& metadata = content.metadata;
    const auto steps = metadata.find("optimizer_steps");
    if (steps == metadata.end())
        throw io::file_error(path, "is not a checkpoint: it has no optimizer_steps metadata");
    const std::size_t step_count = detail::metadata_count(steps->second, path, "optimizer_steps metadata");
    const auto kind = metadata.count("optimizer") ? metadata.at("optimizer") : std::string("sgd");
    if (kind != Optimizer::kind)
        throw io::file_error(path, "is a checkpoint of a run with the " + kind +
                                       " optimiser; this run's optimiser is " + std::string(Optimizer::kind));
    nlohmann::json parameter_steps = nlohmann::json::object();
    if (const auto found = metadata.find("optimizer_parameter_steps"); found != metadata.end()) {
        parameter_steps = nlohmann::json::parse(found->second, nullptr, false);
        if (!parameter_steps.is_object())
            throw io::file_error(path, "optimizer_parameter_steps metadata is not a JSON object");
    }
    const auto names = optimiser.state_names();
    std::map<std::string, parameter_state> state;
    std::size_t state_tensors = 0;
    net.visit_parameters([&](const parameter_view& p) {
        std::size_t found_names = 0;
        parameter_state s;
        for (const auto& name : names) {
            const auto buffer = content.tensors.find(optimizer_prefix + name + "." + p.name);
            if (buffer == content.tensors.end())
                continue;
            const auto& stored = buffer->second;
            if (stored.shape != p.shape)
                throw io::file_error(path, "optimiser state \"" + buffer->first + "\" has shape " +
                                               io::shape_text(stored.shape) + ", not the parameter's " +
                                               io::shape_text(p.shape));
            if (stored.is_integer())
                throw io::file_error(path, "optimiser state \"" + buffer->first + "\" has dtype " + stored.dtype +
                                               ", not a floating-point one");
            const auto bad =
                std::find_if(stored.values.begin(), stored.values.end(), [](float v) { return !std::isfinite(v); });
            if (bad != stored.values.end())
                throw io::file_error(path, "optimiser state \"" + buffer->first +
                                               "\" holds a NaN or an infinity at index " +
                                               std::to_string(bad - stored.values.begin()));
            s.buffers.emplace_back(stored.values.size());
            copy_from_shape_order(p.shape, p.order, stored.values, s.buffers.back().data());
            ++found_names;
        }
        if (found_names == 0)
            return;
        if (found_names != names.size())
            throw io::file_error(path, "holds only part of the " + std::string(Optimizer::kind) + " state of \"" +
                                           p.name + "\"");
        s.steps = step_count;
        if (parameter_steps.contains(p.name)) {
            if (!parameter_steps[p.name].is_number_unsigned())
                throw io::file_error(path, "optimizer_parameter_steps of \"" + p.name + "\" is not a whole number");
            s.steps = parameter_steps[p.name].template get<std::size_t>();
        }
        state_tensors += found_names;
        state.emplace(p.name, std::move(s));
    });
    const auto in_state = std::count_if(content.tensors.begin(), content.tensors.end(),
                                        [](const auto& entry) { return entry.first.rfind(optimizer_prefix, 0) == 0; });
    if (static_cast<std::size_t>(in_state) != state_tensors)
        throw io::file_error(path, "holds optimiser state that is not " + std::string(Optimizer::kind) +
                                       "'s for a parameter of this network");
    io::load_weights(net, content, path, optimizer_prefix);
    optimiser.state() = std::move(state);
    optimiser.steps() = step_count;
}

/// Reads a checkpoint, loads it as above and returns its metadata.
template <class Net, optimizer Optimizer>
std::map<std::string, std::string> load_checkpoint(Net& net, Optimizer& optimiser, const std::filesystem::path& path)
{
    const auto content = io::read_safetensors(path);
    load_checkpoint(net, optimiser, content, path);
    return content.metadata;
}

} // namespace vgg
