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
#include "vgg/train/evaluate.hpp"
#include "vgg/train/history.hpp"
#include "vgg/train/loss.hpp"
#include "vgg/train/clip_grad_norm.hpp"
#include "vgg/train/optimizer.hpp"
#include "vgg/train/progress.hpp"
#include "vgg/train/resume.hpp"
#include "vgg/train/schedule.hpp"
#include "vgg/train/team.hpp"

namespace vgg {

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

/// The class names of a dataset that has them (image_folder: its folders), in label order.
// clang-format off
template <class Dataset>
concept named_classes = requires(const Dataset& set) {
    { set.class_names() } -> std::convertible_to<std::vector<std::string>>;
};
// clang-format on

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

namespace detail {

/// One call of vgg::fit: what it was given, and what its epochs share.
template <class Net, class Optimizer, class Train, class Test, class Team>
class fit_run {
public:
    fit_run(Net& net, Optimizer& optimiser, const Train& train, const Test& test, const fit_options& options,
            Team& team)
        : net_(net), optimiser_(optimiser), train_(train), test_(test), options_(options), team_(team),
          leader_(team.rank() == 0), log_(leader_ && options.log ? *options.log : quiet_),
          terminal_(leader_ && options.terminal), workers_(workers_text(team.size(), options.precision)),
          checkpoint_path_(options.out / "checkpoint.safetensors"),
          plot_path_(options.plot.empty() ? options.out / "curves.svg" : options.plot),
          base_learning_rate_(optimiser.learning_rate),
          batches_((train.size() + options.batch_size - 1) / std::max<std::size_t>(options.batch_size, 1))
    {
        check_arguments();
        settings_ = settings();
        // Which layers are frozen is part of what is trained: a resume must freeze the same ones.
        if constexpr (requires { net.frozen_layers(); })
            frozen_ = net.frozen_layers();
    }

    fit_result run()
    {
        result_.examples_per_epoch = train_.size();
        const std::size_t first_epoch = options_.resume.empty() ? 0 : resume();
        for (const auto& p : result_.history) {
            result_.train_loss = std::isnan(p.train_loss) ? result_.train_loss : p.train_loss;
            result_.train_acc = std::isnan(p.train_acc) ? result_.train_acc : p.train_acc;
            result_.test_acc = std::isnan(p.test_acc) ? result_.test_acc : p.test_acc;
        }
        prepare_output_folder();
        if (!options_.headline.empty())
            log_ << options_.headline << "\n";
        for (std::size_t epoch = first_epoch; epoch < options_.epochs; ++epoch) {
            const auto start = std::chrono::steady_clock::now();
            const std::size_t seen = train_epoch(epoch);
            const double epoch_seconds =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            result_.train_seconds += epoch_seconds;
            result_.test_acc =
                evaluate_accuracy(net_, test_, options_.batch_size, options_.precision, team_, &log_, terminal_);
            result_.history.push_back({double(epoch + 1), NAN, NAN, result_.test_acc});
            char line[256];
            std::snprintf(line, sizeof line,
                          "epoch %zu/%zu: loss %.3f, train acc %.3f, test acc %.3f, %.1f examples/sec on cpu (%s)\n",
                          epoch + 1, options_.epochs, result_.train_loss, result_.train_acc, result_.test_acc,
                          double(seen) / epoch_seconds, workers_.c_str());
            log_ << line << team_.epoch_report((epoch + 1 - first_epoch) * batches_) << std::flush;
            if (leader_ && !options_.out.empty())
                write_epoch_files(epoch);
        }
        // d2l's closing lines.
        char line[256];
        std::snprintf(line, sizeof line, "loss %.3f, train acc %.3f, test acc %.3f\n%.1f examples/sec on cpu (%s)\n",
                      result_.train_loss, result_.train_acc, result_.test_acc,
                      result_.examples_per_second(options_.epochs), workers_.c_str());
        log_ << line << std::flush;
        return std::move(result_);
    }

private:
    void check_arguments() const
    {
        constexpr std::size_t classes = Net::output_shape::size;
        if (train_.classes() != classes || test_.classes() != classes)
            throw std::invalid_argument("fit: the network has " + std::to_string(classes) +
                                        " classes, but the training set has " + std::to_string(train_.classes()) +
                                        " and the test set " + std::to_string(test_.classes()));
        check_same_classes(train_, test_);
        if (const auto problem = sharding_problem(train_.size(), test_.size(), options_.batch_size, team_.size());
            !problem.empty())
            throw std::invalid_argument("fit: " + problem);
        if (options_.clip_grad_norm < 0.f || !std::isfinite(options_.clip_grad_norm))
            throw std::invalid_argument("fit: clip_grad_norm must be 0 (off) or positive, got " +
                                        std::to_string(options_.clip_grad_norm));
    }

    /// How the run trains, kept in checkpoints: a resume with other settings is warned about.
    metadata_list settings() const
    {
        metadata_list settings{{"seed", std::to_string(options_.seed)},
                               {"batch_size", std::to_string(options_.batch_size)},
                               {"train_examples", std::to_string(train_.size())},
                               {"threads", std::to_string(vgg::max_threads())},
                               {"ranks", std::to_string(team_.size())},
                               {"precision", std::string(to_string(options_.precision))}};
        for (auto& entry : optimiser_.settings())
            settings.push_back(std::move(entry));
        if (!options_.schedule.is_constant())
            settings.emplace_back("schedule", options_.schedule.text());
        if (options_.clip_grad_norm > 0.f)
            settings.emplace_back("clip_grad_norm", shortest_text(options_.clip_grad_norm));
        return settings;
    }

    /// Loads options.resume; returns the epochs it has done.
    std::size_t resume()
    {
        const auto checkpoint = io::read_safetensors(options_.resume);
        const auto theirs = checkpoint.metadata.count("frozen_layers") ? checkpoint.metadata.at("frozen_layers") : "";
        if (theirs != frozen_)
            throw io::file_error(options_.resume,
                                 "was made with " + (theirs.empty() ? "no layer" : "layers " + theirs) +
                                     " frozen; this run freezes " + (frozen_.empty() ? "none" : "layers " + frozen_));
        auto run = load_run(net_, optimiser_, checkpoint, options_.resume, options_.identity, settings_,
                            leader_ ? options_.warnings : nullptr);
        result_.train_seconds = run.train_seconds;
        result_.history = std::move(run.history);
        log_ << "resumed from " << options_.resume.string() << " after epoch " << run.epoch << "\n";
        return run.epoch;
    }

    /// Makes the output folder this run's alone, and tries every file it will write before the first epoch.
    void prepare_output_folder()
    {
        if (!leader_ || options_.out.empty())
            return;
        std::error_code error;
        std::filesystem::create_directories(options_.out, error);
        if (error)
            throw io::file_error(options_.out, "cannot create the output folder: " + error.message());
        out_lock_.emplace(options_.out);
        io::remove_stale_temporaries(options_.out);
        for (const auto& path : {checkpoint_path_, options_.out / "metrics.csv", plot_path_})
            io::check_writable(path);
    }

    training_diverged diverged(const std::string& what, std::size_t epoch, std::size_t batch) const
    {
        std::string message =
            what + " at epoch " + std::to_string(epoch + 1) + ", batch " + std::to_string(batch + 1) + "; stopping.";
        if (!options_.out.empty() && std::filesystem::exists(checkpoint_path_))
            message += " The last good checkpoint, " + checkpoint_path_.string() + ", is untouched.";
        return training_diverged(message);
    }

    /// One epoch's steps; returns the examples seen.
    std::size_t train_epoch(std::size_t epoch)
    {
        std::vector<std::size_t> order(train_.size());
        std::iota(order.begin(), order.end(), 0);
        rng shuffle(mix64(options_.seed, epoch));
        for (std::size_t i = order.size(); i > 1; --i)
            std::swap(order[i - 1], order[shuffle.below(i)]);
        progress_reporter progress(
            log_, terminal_, "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(options_.epochs), batches_);
        const std::size_t plot_every = std::max<std::size_t>(batches_ / 5, 1);
        double loss_sum = 0;
        std::size_t correct = 0, seen = 0;
        for (std::size_t b = 0; b < batches_; ++b) {
            const std::size_t begin = b * options_.batch_size,
                              count = std::min(options_.batch_size, order.size() - begin);
            const std::array<double, 2> totals =
                train_step(epoch, b, std::span<const std::size_t>(order).subspan(begin, count), progress);
            loss_sum += totals[0];
            correct += static_cast<std::size_t>(totals[1]);
            seen += count;
            progress.update(b + 1, seen, loss_sum / double(seen));
            if ((b + 1) % plot_every == 0 || b + 1 == batches_) {
                result_.train_loss = loss_sum / double(seen);
                result_.train_acc = double(correct) / double(seen);
                result_.history.push_back(
                    {double(epoch) + double(b + 1) / double(batches_), result_.train_loss, result_.train_acc, NAN});
            }
        }
        progress.finish();
        return seen;
    }

    /// Step b of an epoch on the examples `batch` (this process takes its part): the loss summed
    /// over the batch and the examples classified correctly, over all processes.
    std::array<double, 2> train_step(std::size_t epoch, std::size_t b, std::span<const std::size_t> batch,
                                     progress_reporter& progress)
    {
        const auto mine = detail::partition(batch.size(), team_.size(), team_.rank()); // this process's part
        const std::uint64_t step = epoch * batches_ + b;
        const auto indices = batch.subspan(mine.begin, mine.size());
        if constexpr (requires { train_.load_batch(indices, images_, labels_, data::augmentation_key{}); })
            train_.load_batch(indices, images_, labels_,
                              data::augmentation_key{mix64(options_.seed ^ 0xa06, step), mine.begin});
        else
            train_.load_batch(indices, images_, labels_);
        const run_context context{mode::train, mix64(options_.seed ^ 0xd209, step), mine.begin, options_.precision};
        const auto loss = softmax_cross_entropy(net_.forward(images_, context), labels_, grad_);
        std::array<double, 2> totals{double(loss.loss) * double(mine.size()), double(loss.correct)};
        team_.sum(totals);
        if (!std::isfinite(totals[0])) {
            progress.finish();
            throw diverged("the loss became " + std::to_string(totals[0] / double(batch.size())), epoch, b);
        }
        team_.backward(net_, grad_, float(mine.size()) / float(batch.size()));
        if (options_.clip_grad_norm > 0.f)
            clip_grad_norm(net_, options_.clip_grad_norm);
        optimiser_.learning_rate = options_.schedule.learning_rate(
            base_learning_rate_, options_.schedule.unit() == schedule_unit::epoch ? epoch : step);
        optimiser_.step(net_);
        if (const auto& bad = optimiser_.non_finite_parameter(); !bad.empty()) {
            progress.finish();
            throw diverged("parameter \"" + bad + "\" became NaN or infinite", epoch, b);
        }
        return totals;
    }

    /// metrics.csv, curves.svg and the checkpoint after epoch `epoch`.
    void write_epoch_files(std::size_t epoch)
    {
        io::write_file_atomically(options_.out / "metrics.csv", history_csv(result_.history));
        io::write_file_atomically(plot_path_, history_svg(result_.history, options_.epochs));
        std::map<std::string, std::string> metadata{{"format", fit_checkpoint_format},
                                                    {"epoch", std::to_string(epoch + 1)},
                                                    {"train_seconds", std::to_string(result_.train_seconds)},
                                                    {"history", history_to_json(result_.history).dump()}};
        for (const auto& entry : options_.identity)
            metadata.insert(entry);
        if (!frozen_.empty())
            metadata["frozen_layers"] = frozen_;
        for (const auto& entry : settings_)
            metadata.insert(entry);
        save_checkpoint(net_, optimiser_, checkpoint_path_, metadata);
        if (result_.written.empty())
            result_.written = {checkpoint_path_, options_.out / "metrics.csv", plot_path_};
    }

    Net& net_;
    Optimizer& optimiser_;
    const Train& train_;
    const Test& test_;
    const fit_options& options_;
    Team& team_;
    bool leader_;
    std::ostream quiet_{nullptr};
    std::ostream& log_;
    bool terminal_;
    std::string workers_;
    std::filesystem::path checkpoint_path_, plot_path_;
    float base_learning_rate_;
    std::size_t batches_;
    metadata_list settings_;
    std::string frozen_;
    std::optional<io::folder_lock> out_lock_;
    fit_result result_;
    tensor<typename Net::input_shape> images_;
    std::vector<int> labels_;
    tensor<typename Net::output_shape> grad_;
};

} // namespace detail

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
    return detail::fit_run<Net, Optimizer, Train, Test, std::remove_reference_t<Team>>(net, optimiser, train, test,
                                                                                       options, team)
        .run();
}

} // namespace vgg
