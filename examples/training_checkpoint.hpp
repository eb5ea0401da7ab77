#pragma once
// What vgg_train keeps in its checkpoints beside the weights and the optimiser: the epoch
// reached, the training time so far, the curves' points and the run's settings, as safetensors
// metadata. Shared by the trainer and the checkpoint fuzz target, which feeds it arbitrary bytes.
#include <charconv>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <vgg/io/safetensors.hpp>
#include <vgg/train/checkpoint.hpp>

namespace vgg_train {

inline const std::string checkpoint_format = "vgg-checkpoint-1";

/// One point of d2l's Animator: train loss and accuracy several times an epoch, test accuracy
/// at the end of each (NaN where a value is not measured at that point).
struct metric_point {
    double epoch, train_loss, train_acc, test_acc;
};

inline nlohmann::json to_json(const std::vector<metric_point>& history)
{
    auto out = nlohmann::json::array();
    auto cell = [](double v) { return std::isnan(v) ? nlohmann::json() : nlohmann::json(v); };
    for (const auto& p : history)
        out.push_back({cell(p.epoch), cell(p.train_loss), cell(p.train_acc), cell(p.test_acc)});
    return out;
}

inline std::vector<metric_point> history_from_json(const std::string& text, const std::filesystem::path& source)
{
    const auto json = nlohmann::json::parse(text, nullptr, false);
    if (json.is_discarded() || !json.is_array())
        throw vgg::io::file_error(source, "its history metadata is not a JSON array");
    std::vector<metric_point> history;
    auto value = [](const nlohmann::json& v) { return v.is_number() ? v.get<double>() : NAN; };
    for (const auto& p : json) {
        if (!p.is_array() || p.size() != 4)
            throw vgg::io::file_error(source, "its history metadata has a malformed point");
        history.push_back({value(p[0]), value(p[1]), value(p[2]), value(p[3])});
    }
    return history;
}

/// Where a checkpointed run stands.
struct run_state {
    std::size_t epoch = 0;
    double train_seconds = 0;
    std::vector<metric_point> history;
    std::map<std::string, std::string> metadata;
};

/// Checks a checkpoint's metadata against the preset (`resize`, `ratio`), then loads its
/// weights and optimiser state into `net` and `optimiser`. Every check runs before anything is
/// loaded: on an error nothing has changed.
template <class Net>
run_state load_run(Net& net, vgg::sgd& optimiser, const vgg::io::safetensors_content& checkpoint,
                   const std::filesystem::path& path, std::size_t resize, std::size_t ratio)
{
    run_state state;
    state.metadata = checkpoint.metadata;
    auto field = [&](const std::string& key) {
        const auto found = state.metadata.find(key);
        if (found == state.metadata.end())
            throw vgg::io::file_error(path, "checkpoint has no \"" + key + "\" metadata");
        return found->second;
    };
    if (!state.metadata.count("format"))
        throw vgg::io::file_error(path, "holds weights only (a model file such as model.safetensors), not a training "
                                        "checkpoint: --resume needs OUT/checkpoint.safetensors; to classify with these "
                                        "weights, pass them to vgg_predict --weights");
    if (field("format") != checkpoint_format)
        throw vgg::io::file_error(path, "is not a vgg_train checkpoint (format \"" + field("format") + "\", expected \"" +
                                            checkpoint_format + "\")");
    if (field("resize") != std::to_string(resize) || field("ratio") != std::to_string(ratio))
        throw vgg::io::file_error(path, "is a checkpoint for --resize " + field("resize") + " --ratio " + field("ratio") +
                                            ", not --resize " + std::to_string(resize) + " --ratio " + std::to_string(ratio));
    const std::string epoch = field("epoch");
    const auto parsed = std::from_chars(epoch.data(), epoch.data() + epoch.size(), state.epoch);
    if (parsed.ec != std::errc() || parsed.ptr != epoch.data() + epoch.size())
        throw vgg::io::file_error(path, "checkpoint metadata \"epoch\" is not a whole number: \"" + epoch + "\"");
    try {
        std::size_t used = 0;
        const std::string seconds = field("train_seconds");
        state.train_seconds = std::stod(seconds, &used);
        if (used != seconds.size() || !std::isfinite(state.train_seconds) || state.train_seconds < 0)
            throw std::invalid_argument(seconds);
    } catch (const std::logic_error&) {
        throw vgg::io::file_error(path, "checkpoint metadata \"train_seconds\" is not a non-negative number");
    }
    state.history = history_from_json(field("history"), path);
    vgg::load_checkpoint(net, optimiser, checkpoint, path);
    return state;
}

} // namespace vgg_train
