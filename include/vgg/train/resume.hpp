#pragma once
// Continuing a run of vgg::fit from the checkpoint it wrote.
#include <cstddef>
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "vgg/io/error.hpp"
#include "vgg/io/safetensors.hpp"
#include "vgg/train/checkpoint.hpp"
#include "vgg/train/history.hpp"
#include "vgg/train/optimizer.hpp"
#include "vgg/train/schedule.hpp"

namespace vgg {

/// What fit writes into checkpoints as "format"; a checkpoint of another format is refused.
inline const std::string fit_checkpoint_format = "vgg-checkpoint-1";

/// Where a checkpointed run stands.
struct checkpointed_run {
    std::size_t epoch = 0;
    double train_seconds = 0;
    std::vector<metric_point> history;
};

/// Checks a checkpoint that fit wrote (`checkpoint`, read from `path`) against the run: its
/// format, then `identity` (what is trained: another value is an error); then loads it into
/// `net` and `optimiser`. Every check runs before anything is loaded. Entries of `settings` that
/// differ only bring a line on `warnings`: the run goes on, but will not repeat the original.
template <class Net, optimizer Optimizer>
checkpointed_run load_run(Net& net, Optimizer& optimiser, const io::safetensors_content& checkpoint,
                          const std::filesystem::path& path, const metadata_list& identity,
                          const metadata_list& settings = {}, std::ostream* warnings = nullptr)
{
    const auto& metadata = checkpoint.metadata;
    auto field = [&](const std::string& key) {
        const auto found = metadata.find(key);
        if (found == metadata.end())
            throw io::file_error(path, "checkpoint has no \"" + key + "\" metadata");
        return found->second;
    };
    if (!metadata.count("format"))
        throw io::file_error(path, "holds weights only (a model file such as model.safetensors), not a training "
                                   "checkpoint (fit writes those as checkpoint.safetensors in its output folder)");
    if (field("format") != fit_checkpoint_format)
        throw io::file_error(path, "is not a training checkpoint of vgg::fit (format \"" + field("format") +
                                       "\", expected \"" + fit_checkpoint_format + "\")");
    std::string theirs, ours;
    for (const auto& [key, value] : identity) {
        const auto found = metadata.find(key);
        theirs += (theirs.empty() ? " " : ", ") + key + " " + (found == metadata.end() ? "?" : found->second);
        ours += (ours.empty() ? " " : ", ") + key + " " + value;
    }
    if (theirs != ours)
        throw io::file_error(path, "is a checkpoint for" + theirs + ", not" + ours);
    checkpointed_run run;
    const std::string epoch = field("epoch");
    const auto parsed = std::from_chars(epoch.data(), epoch.data() + epoch.size(), run.epoch);
    if (parsed.ec != std::errc() || parsed.ptr != epoch.data() + epoch.size())
        throw io::file_error(path, "checkpoint metadata \"epoch\" is not a whole number: \"" + epoch + "\"");
    try {
        std::size_t used = 0;
        const std::string seconds = field("train_seconds");
        run.train_seconds = std::stod(seconds, &used);
        if (used != seconds.size() || !std::isfinite(run.train_seconds) || run.train_seconds < 0)
            throw std::invalid_argument(seconds);
    } catch (const std::logic_error&) {
        throw io::file_error(path, "checkpoint metadata \"train_seconds\" is not a non-negative number");
    }
    run.history = history_from_json(field("history"), path);
    load_checkpoint(net, optimiser, checkpoint, path);
    for (const auto& [key, value] : settings) {
        const auto found = metadata.find(key);
        // Checkpoints from before MPI and bf16 support were made by one process in fp32; those from
        // before the optimiser's settings were kept say nothing of them; a schedule, Nesterov or
        // clipping is written only when used.
        if (found == metadata.end() && (key == "lr" || key == "momentum" || key == "weight_decay"))
            continue;
        const std::string older = key == "ranks"            ? "1"
                                  : key == "precision"      ? "fp32"
                                  : key == "schedule"       ? lr_schedule::constant().text()
                                  : key == "nesterov"       ? "0"
                                  : key == "clip_grad_norm" ? "0"
                                                            : "?";
        const std::string made_with = found != metadata.end() ? found->second : older;
        if (made_with != value && warnings)
            *warnings << "warning: the checkpoint was made with " << key << " " << made_with << ", this run uses "
                      << value << ": the result will differ from an uninterrupted run\n";
    }
    return run;
}

} // namespace vgg
