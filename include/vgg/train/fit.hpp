#pragma once
#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <numeric>
#include <optional>
#include <ostream>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "vgg/core/layer.hpp"
#include "vgg/core/precision.hpp"
#include "vgg/core/rng.hpp"
#include "vgg/core/tensor.hpp"
#include "vgg/data/dataset.hpp"
#include "vgg/detail/parallel.hpp"
#include "vgg/io/atomic_file.hpp"
#include "vgg/io/output_folder.hpp"
#include "vgg/kernels/cpu_features.hpp"
#include "vgg/train/checkpoint.hpp"
#include "vgg/train/history.hpp"
#include "vgg/train/loss.hpp"
#include "vgg/train/clip_grad_norm.hpp"
#include "vgg/train/optimizer.hpp"
#include "vgg/train/progress.hpp"
#include "vgg/train/schedule.hpp"

namespace vgg {

/// What fit writes into checkpoints as "format"; a checkpoint of another format is refused.
inline const std::string fit_checkpoint_format = "vgg-checkpoint-1";

/// The processes that train together: this one alone. vgg/distributed/mpi.hpp's mpi_team is
/// the other kind; fit only needs what this class has.
struct single_process {
    std::size_t rank() const { return 0; }
    std::size_t size() const { return 1; }
    /// Sums `values` over the processes.
    void sum(std::span<double>) const {}
    /// Backward of the local share (`share` of the global batch) that leaves every process with
    /// the whole batch's gradients.
    template <class Net>
    void backward(Net& net, const tensor<typename Net::output_shape>& grad, float /*share*/)
    {
        net.backward(grad);
    }
    /// A line for the log after each epoch ("" for none).
    std::string epoch_report(std::size_t /*steps*/) const { return {}; }
};

/// How vgg::fit trains: d2l's train_ch6 settings and where its results go.
struct fit_options {
    std::size_t epochs = 10;
    std::size_t batch_size = 128;
    /// The learning rate over the run, from the optimiser's learning rate when fit starts.
    lr_schedule schedule = lr_schedule::constant();
    /// Clips the gradients' global 2-norm to this before every step (clip_grad_norm); 0: no clipping.
    float clip_grad_norm = 0.f;
    /// Seeds the order of every epoch (with the epoch's number) and the dropout masks.
    std::uint64_t seed = 42;
    vgg::precision precision = vgg::precision::fp32;
    /// Folder for metrics.csv, curves.svg and checkpoint.safetensors, rewritten after every
    /// epoch (atomically: an interrupted run leaves the previous epoch's files). Empty: no files.
    std::filesystem::path out;
    /// Where the curves go instead of out/curves.svg.
    std::filesystem::path plot;
    /// A checkpoint of an earlier run to continue from, as if never interrupted.
    std::filesystem::path resume;
    /// Metadata naming what is trained (e.g. {"resize", "224"}), kept in checkpoints; resuming
    /// from a checkpoint with other values is an error.
    std::vector<std::pair<std::string, std::string>> identity;
    /// Progress bars, the epoch lines and d2l's closing lines (null: silent); `terminal` redraws
    /// the bars in place. Warnings (a resume with other settings) go to `warnings`.
    std::ostream* log = nullptr;
    bool terminal = false;
    /// A line for the log before the first epoch (after the resume line), e.g. what is trained on what.
    std::string headline;
    std::ostream* warnings = nullptr;
};

/// What a run reached: the curves' points, the time spent training (not testing) over all
/// epochs, resumed ones included, and the last values.
struct fit_result {
    std::vector<metric_point> history;
    double train_seconds = 0;
    std::size_t examples_per_epoch = 0;
    /// The files this call wrote (none when every epoch was done already, or out is empty).
    std::vector<std::filesystem::path> written;
    double train_loss = NAN, train_acc = NAN, test_acc = NAN;
    /// Examples trained per second of training time, as d2l prints it.
    double examples_per_second(std::size_t epochs) const
    {
        return double(examples_per_epoch) * double(epochs) / std::max(train_seconds, 1e-9);
    }
};

/// Thrown when the loss or a parameter becomes NaN or infinite: the run stops, and the last
/// checkpoint (of the last good epoch) is left as it was.
struct training_diverged : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// "T threads[ x R MPI ranks], PRECISION[ on KERNEL]": what computes, for the log.
inline std::string workers_text(std::size_t ranks, vgg::precision precision)
{
    return std::to_string(vgg::max_threads()) + " threads" +
           (ranks > 1 ? " x " + std::to_string(ranks) + " MPI ranks" : "") + ", " + std::string(to_string(precision)) +
           (precision == vgg::precision::bf16 ? " on " + std::string(to_string(kernels::best_bf16_kernel())) : "");
}

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
        const std::string older = key == "ranks"       ? "1"
                                  : key == "precision" ? "fp32"
                                  : key == "schedule"  ? lr_schedule::constant().text()
                                  : key == "nesterov"  ? "0"
                                  : key == "clip_grad_norm" ? "0"
                                                       : "?";
        const std::string made_with = found != metadata.end() ? found->second : older;
        if (made_with != value && warnings)
            *warnings << "warning: the checkpoint was made with " << key << " " << made_with << ", this run uses "
                      << value << ": the result will differ from an uninterrupted run\n";
    }
    return run;
}

/// Accuracy of `net` on `test` in evaluation mode; each process of `team` tests its share and
/// the counts are summed.
template <class Net, data::dataset_for<typename Net::input_shape> Test, class Team = single_process>
double evaluate_accuracy(Net& net, const Test& test, std::size_t batch_size, vgg::precision precision,
                         const Team& team = {}, std::ostream* log = nullptr, bool terminal = false)
{
    if (batch_size == 0)
        throw std::invalid_argument("evaluate_accuracy: the batch size is 0");
    if (test.size() == 0)
        throw std::invalid_argument("evaluate_accuracy: the test set is empty");
    tensor<typename Net::input_shape> images;
    std::vector<int> labels;
    tensor<typename Net::output_shape> grad;
    const auto mine = detail::partition(test.size(), team.size(), team.rank());
    std::vector<std::size_t> order(mine.size());
    std::iota(order.begin(), order.end(), mine.begin);
    const std::size_t batches = (order.size() + batch_size - 1) / batch_size;
    std::ostream quiet(nullptr);
    progress_reporter progress(log ? *log : quiet, terminal, "  test", batches);
    double correct = 0;
    for (std::size_t b = 0; b < batches; ++b) {
        const std::size_t begin = b * batch_size, count = std::min(batch_size, order.size() - begin);
        test.load_batch(std::span(order).subspan(begin, count), images, labels);
        correct += double(softmax_cross_entropy(net.forward(images, {mode::eval, 0, 0, precision}), labels, grad).correct);
        progress.update(b + 1, begin + count, NAN);
    }
    progress.finish();
    team.sum(std::span(&correct, 1));
    return correct / double(test.size());
}

/// The class names of a dataset that has them (image_folder: its folders), in label order.
template <class Dataset>
concept named_classes = requires(const Dataset& set) {
    { set.class_names() } -> std::convertible_to<std::vector<std::string>>;
};

/// Throws std::invalid_argument unless `train` and `test` name their classes alike, where both
/// name them: with the same count but other names, every test label would mean another class.
template <class Train, class Test>
void check_same_classes(const Train& train, const Test& test)
{
    if constexpr (named_classes<Train> && named_classes<Test>) {
        const std::vector<std::string> ours = train.class_names(), theirs = test.class_names();
        if (ours == theirs)
            return;
        const auto list = [](const std::vector<std::string>& names) {
            std::string text;
            for (const auto& name : names)
                text += (text.empty() ? "" : ", ") + name;
            return text;
        };
        throw std::invalid_argument("fit: the training set's classes (" + list(ours) + ") are not the test set's (" +
                                    list(theirs) + "): label numbers would name other classes in each");
    }
}

/// Why `processes` cannot share the training set (`train_size` examples in batches of
/// `batch_size`) and the test set (`test_size`), or "": every process takes an equal part of
/// every batch, the last (shorter) one included, and a part of the test set.
inline std::string sharding_problem(std::size_t train_size, std::size_t test_size, std::size_t batch_size,
                                    std::size_t processes)
{
    const std::string over = std::to_string(processes) + " processes";
    if (batch_size == 0)
        return "the batch size is 0";
    if (batch_size % processes != 0)
        return "the batch size " + std::to_string(batch_size) + " does not divide evenly over " + over;
    const std::size_t last_batch = train_size % batch_size ? train_size % batch_size : batch_size;
    if (last_batch < processes)
        return "the last batch of an epoch holds " + std::to_string(last_batch) + " examples, fewer than the " + over +
               ": a process would get no data";
    if (test_size < processes)
        return "the test set holds " + std::to_string(test_size) + " examples, fewer than the " + over +
               ": a process would get no data";
    return "";
}

/// d2l's train_ch6 for any network, optimiser (sgd, adam, adamw) and datasets: every epoch,
/// shuffled mini-batches (the order a function of the seed and the epoch; a dataset that augments
/// draws from the seed and the step), a forward pass in training mode (dropout masks keyed by the
/// seed and the step; frozen layers in evaluation mode), cross-entropy, backward, optional
/// gradient clipping, a step at the learning rate options.schedule gives; then the test accuracy.
/// Progress and the epoch lines go to options.log; metrics.csv, curves.svg and a checkpoint to
/// options.out after every epoch; options.resume continues a run exactly. A NaN or infinite
/// loss or parameter throws training_diverged. With an MPI team (vgg/distributed/mpi.hpp) each
/// process trains on its share of every batch (see sharding_problem)
/// and only rank 0 logs and writes.
template <network Net, optimizer Optimizer, data::dataset_for<typename Net::input_shape> Train,
          data::dataset_for<typename Net::input_shape> Test, class Team = single_process>
fit_result fit(Net& net, Optimizer& optimiser, const Train& train, const Test& test, const fit_options& options,
               Team&& team = {})
{
    constexpr std::size_t classes = Net::output_shape::size;
    if (train.classes() != classes || test.classes() != classes)
        throw std::invalid_argument("fit: the network has " + std::to_string(classes) + " classes, but the training set has " +
                                    std::to_string(train.classes()) + " and the test set " + std::to_string(test.classes()));
    check_same_classes(train, test);
    if (const auto problem = sharding_problem(train.size(), test.size(), options.batch_size, team.size()); !problem.empty())
        throw std::invalid_argument("fit: " + problem);
    const bool leader = team.rank() == 0;
    std::ostream quiet(nullptr);
    std::ostream& log = leader && options.log ? *options.log : quiet;
    const bool terminal = leader && options.terminal;
    const std::string workers = workers_text(team.size(), options.precision);
    const std::filesystem::path checkpoint_path = options.out / "checkpoint.safetensors";
    const std::filesystem::path plot_path = options.plot.empty() ? options.out / "curves.svg" : options.plot;
    if (options.clip_grad_norm < 0.f || !std::isfinite(options.clip_grad_norm))
        throw std::invalid_argument("fit: clip_grad_norm must be 0 (off) or positive, got " +
                                    std::to_string(options.clip_grad_norm));
    metadata_list settings{
        {"seed", std::to_string(options.seed)},
        {"batch_size", std::to_string(options.batch_size)},
        {"train_examples", std::to_string(train.size())},
        {"threads", std::to_string(vgg::max_threads())},
        {"ranks", std::to_string(team.size())},
        {"precision", std::string(to_string(options.precision))}};
    for (auto& entry : optimiser.settings())
        settings.push_back(std::move(entry));
    if (!options.schedule.is_constant())
        settings.emplace_back("schedule", options.schedule.text());
    if (options.clip_grad_norm > 0.f)
        settings.emplace_back("clip_grad_norm", shortest_text(options.clip_grad_norm));
    const float base_learning_rate = optimiser.learning_rate;
    const auto schedule_at = [&](std::size_t epoch, std::size_t step) {
        optimiser.learning_rate = options.schedule.learning_rate(
            base_learning_rate, options.schedule.unit() == schedule_unit::epoch ? epoch : step);
    };

    // Which layers are frozen is part of what is trained: a resume must freeze the same ones.
    std::string frozen;
    if constexpr (requires { net.frozen_layers(); })
        frozen = net.frozen_layers();

    fit_result result;
    result.examples_per_epoch = train.size();
    std::size_t first_epoch = 0;
    if (!options.resume.empty()) {
        const auto checkpoint = io::read_safetensors(options.resume);
        const auto theirs = checkpoint.metadata.count("frozen_layers") ? checkpoint.metadata.at("frozen_layers") : "";
        if (theirs != frozen)
            throw io::file_error(options.resume, "was made with " + (theirs.empty() ? "no layer" : "layers " + theirs) +
                                                     " frozen; this run freezes " +
                                                     (frozen.empty() ? "none" : "layers " + frozen));
        auto run = load_run(net, optimiser, checkpoint, options.resume, options.identity, settings,
                            leader ? options.warnings : nullptr);
        first_epoch = run.epoch;
        result.train_seconds = run.train_seconds;
        result.history = std::move(run.history);
        log << "resumed from " << options.resume.string() << " after epoch " << first_epoch << "\n";
    }
    for (const auto& p : result.history) {
        result.train_loss = std::isnan(p.train_loss) ? result.train_loss : p.train_loss;
        result.train_acc = std::isnan(p.train_acc) ? result.train_acc : p.train_acc;
        result.test_acc = std::isnan(p.test_acc) ? result.test_acc : p.test_acc;
    }
    // The output folder is this run's alone from now on, and every file it will write is tried
    // before the first epoch.
    std::optional<io::folder_lock> out_lock;
    if (leader && !options.out.empty()) {
        std::error_code error;
        std::filesystem::create_directories(options.out, error);
        if (error)
            throw io::file_error(options.out, "cannot create the output folder: " + error.message());
        out_lock.emplace(options.out);
        io::remove_stale_temporaries(options.out);
        for (const auto& path : {checkpoint_path, options.out / "metrics.csv", plot_path})
            io::check_writable(path);
    }
    if (!options.headline.empty())
        log << options.headline << "\n";

    auto diverged = [&](const std::string& what, std::size_t epoch, std::size_t batch) {
        std::string message = what + " at epoch " + std::to_string(epoch + 1) + ", batch " + std::to_string(batch + 1) +
                              "; stopping.";
        if (!options.out.empty() && std::filesystem::exists(checkpoint_path))
            message += " The last good checkpoint, " + checkpoint_path.string() + ", is untouched.";
        return training_diverged(message);
    };

    const std::size_t batches = (train.size() + options.batch_size - 1) / options.batch_size;
    const std::size_t plot_every = std::max<std::size_t>(batches / 5, 1);
    tensor<typename Net::input_shape> images;
    std::vector<int> labels;
    tensor<typename Net::output_shape> grad;
    std::vector<std::size_t> order(train.size());
    for (std::size_t epoch = first_epoch; epoch < options.epochs; ++epoch) {
        std::iota(order.begin(), order.end(), 0);
        rng shuffle(mix64(options.seed, epoch));
        for (std::size_t i = order.size(); i > 1; --i)
            std::swap(order[i - 1], order[shuffle.below(i)]);

        progress_reporter progress(log, terminal, "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(options.epochs),
                                   batches);
        const auto start = std::chrono::steady_clock::now();
        double loss_sum = 0;
        std::size_t correct = 0, seen = 0;
        for (std::size_t b = 0; b < batches; ++b) {
            const std::size_t begin = b * options.batch_size, count = std::min(options.batch_size, order.size() - begin);
            const auto mine = detail::partition(count, team.size(), team.rank()); // this process's part of the batch
            const std::uint64_t step = epoch * batches + b;
            const auto indices = std::span<const std::size_t>(order).subspan(begin + mine.begin, mine.size());
            if constexpr (requires { train.load_batch(indices, images, labels, data::augmentation_key{}); })
                train.load_batch(indices, images, labels, data::augmentation_key{mix64(options.seed ^ 0xa06, step), mine.begin});
            else
                train.load_batch(indices, images, labels);
            const run_context context{mode::train, mix64(options.seed ^ 0xd209, step), mine.begin, options.precision};
            const auto loss = softmax_cross_entropy(net.forward(images, context), labels, grad);
            std::array<double, 2> totals{double(loss.loss) * double(mine.size()), double(loss.correct)};
            team.sum(totals);
            if (!std::isfinite(totals[0])) {
                progress.finish();
                throw diverged("the loss became " + std::to_string(totals[0] / double(count)), epoch, b);
            }
            team.backward(net, grad, float(mine.size()) / float(count));
            if (options.clip_grad_norm > 0.f)
                clip_grad_norm(net, options.clip_grad_norm);
            schedule_at(epoch, step);
            optimiser.step(net);
            if (const auto& bad = optimiser.non_finite_parameter(); !bad.empty()) {
                progress.finish();
                throw diverged("parameter \"" + bad + "\" became NaN or infinite", epoch, b);
            }
            loss_sum += totals[0];
            correct += static_cast<std::size_t>(totals[1]);
            seen += count;
            progress.update(b + 1, seen, loss_sum / double(seen));
            if ((b + 1) % plot_every == 0 || b + 1 == batches) {
                result.train_loss = loss_sum / double(seen);
                result.train_acc = double(correct) / double(seen);
                result.history.push_back({double(epoch) + double(b + 1) / double(batches), result.train_loss,
                                          result.train_acc, NAN});
            }
        }
        progress.finish();
        const double epoch_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        result.train_seconds += epoch_seconds;
        result.test_acc = evaluate_accuracy(net, test, options.batch_size, options.precision, team, &log, terminal);
        result.history.push_back({double(epoch + 1), NAN, NAN, result.test_acc});

        char line[256];
        std::snprintf(line, sizeof line, "epoch %zu/%zu: loss %.3f, train acc %.3f, test acc %.3f, %.1f examples/sec on cpu (%s)\n",
                      epoch + 1, options.epochs, result.train_loss, result.train_acc, result.test_acc,
                      double(seen) / epoch_seconds, workers.c_str());
        log << line << team.epoch_report((epoch + 1 - first_epoch) * batches) << std::flush;
        if (!leader || options.out.empty())
            continue;
        io::write_file_atomically(options.out / "metrics.csv", history_csv(result.history));
        io::write_file_atomically(plot_path, history_svg(result.history, options.epochs));
        std::map<std::string, std::string> metadata{{"format", fit_checkpoint_format},
                                                    {"epoch", std::to_string(epoch + 1)},
                                                    {"train_seconds", std::to_string(result.train_seconds)},
                                                    {"history", history_to_json(result.history).dump()}};
        for (const auto& entry : options.identity)
            metadata.insert(entry);
        if (!frozen.empty())
            metadata["frozen_layers"] = frozen;
        for (const auto& entry : settings)
            metadata.insert(entry);
        save_checkpoint(net, optimiser, checkpoint_path, metadata);
        if (result.written.empty())
            result.written = {checkpoint_path, options.out / "metrics.csv", plot_path};
    }

    // d2l's closing lines.
    char line[256];
    std::snprintf(line, sizeof line, "loss %.3f, train acc %.3f, test acc %.3f\n%.1f examples/sec on cpu (%s)\n",
                  result.train_loss, result.train_acc, result.test_acc, result.examples_per_second(options.epochs),
                  workers.c_str());
    log << line << std::flush;
    return result;
}

} // namespace vgg
