#pragma once
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "vgg/io/safetensors.hpp"
#include "vgg/train/sgd.hpp"

namespace vgg {

/// Prefix of the optimiser's tensors inside a checkpoint, beside the network's own.
inline const std::string optimizer_prefix = "optimizer.momentum_buffer.";

using io::first_non_finite_parameter;

/// Saves the network, the optimiser's momentum buffers (as "optimizer.momentum_buffer.<name>")
/// and `metadata` (epoch, seed, ...) in one safetensors file, written atomically: a crash leaves
/// the previous checkpoint in place. A network with a NaN or infinite parameter is refused, so a
/// diverged run cannot replace a good checkpoint.
template <class Net>
void save_checkpoint(Net& net, sgd& optimiser, const std::filesystem::path& path,
                     std::map<std::string, std::string> metadata)
{
    static_assert(network<Net>, "save_checkpoint(net, ...) needs a network such as Sequential or VGG: forward(x), backward(dy) and visit_parameters(visitor).");
    auto tensors = io::finite_parameter_tensors(net, path);
    std::size_t trainable = 0; // momentum buffers follow the trainable parameters, in order
    net.visit_parameters([&](const parameter_view& p) {
        if (p.trainable && trainable < optimiser.velocity().size())
            tensors.push_back({optimizer_prefix + p.name, p.shape, optimiser.velocity()[trainable], p.order});
        trainable += p.trainable ? 1 : 0;
    });
    metadata["optimizer_steps"] = std::to_string(optimiser.steps());
    io::write_safetensors(path, tensors, metadata);
}

/// Loads what save_checkpoint wrote (read from `path` into `content`) into `net` and
/// `optimiser`. Nothing is changed unless the whole checkpoint checks out.
template <class Net>
void load_checkpoint(Net& net, sgd& optimiser, const io::safetensors_content& content, const std::filesystem::path& path)
{
    static_assert(network<Net>, "load_checkpoint(net, ...) needs a network such as Sequential or VGG: forward(x), backward(dy) and visit_parameters(visitor).");
    const auto steps = content.metadata.find("optimizer_steps");
    if (steps == content.metadata.end())
        throw io::file_error(path, "is not a checkpoint: it has no optimizer_steps metadata");
    std::vector<large_page_vector<float>> velocity;
    std::size_t parameters = 0;
    net.visit_parameters([&](const parameter_view& p) {
        if (!p.trainable)
            return;
        ++parameters;
        const auto buffer = content.tensors.find(optimizer_prefix + p.name);
        if (buffer == content.tensors.end())
            return;
        if (buffer->second.shape != p.shape)
            throw io::file_error(path, "momentum buffer of \"" + p.name + "\" does not have the parameter's shape");
        velocity.emplace_back(buffer->second.values.size());
        copy_from_shape_order(p.shape, p.order, buffer->second.values, velocity.back().data());
    });
    if (!velocity.empty() && velocity.size() != parameters)
        throw io::file_error(path, "has momentum buffers for only some parameters");
    std::size_t step_count = 0;
    try {
        step_count = std::stoull(steps->second);
    } catch (const std::exception&) {
        throw io::file_error(path, "optimizer_steps metadata \"" + steps->second + "\" is not a number");
    }
    io::load_weights(net, content, path, optimizer_prefix);
    optimiser.velocity() = std::move(velocity);
    optimiser.steps() = step_count;
}

/// Reads a checkpoint, loads it as above and returns its metadata.
template <class Net>
std::map<std::string, std::string> load_checkpoint(Net& net, sgd& optimiser, const std::filesystem::path& path)
{
    const auto content = io::read_safetensors(path);
    load_checkpoint(net, optimiser, content, path);
    return content.metadata;
}

} // namespace vgg
