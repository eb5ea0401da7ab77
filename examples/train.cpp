// vgg_train: the seed's experiment. d2l's train_ch6 on Fashion-MNIST resized to 224x224 with the
// small VGG-11 (channels divided by 4): Xavier-uniform init, SGD with lr 0.05, batch 128,
// 10 epochs, cross-entropy; test accuracy after every epoch; curves, CSV and checkpoints.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <numeric>
#include <optional>
#include <span>
#include <sstream>

#include <unistd.h>

#include <CLI/CLI.hpp>

#include <vgg/data/fashion_mnist.hpp>
#include <vgg/io/safetensors.hpp>
#include <vgg/io/svg_plot.hpp>
#include <vgg/train/checkpoint.hpp>
#include <vgg/train/progress.hpp>
#include <vgg/vgg.hpp>

#include "cli_checks.hpp"
#include "training_checkpoint.hpp"

#ifdef VGG_WITH_MPI
#include <vgg/distributed/mpi.hpp>
#endif

namespace fs = std::filesystem;

namespace {

struct options {
    fs::path data = vgg::data::default_fashion_mnist_dir;
    fs::path out = "out";
    fs::path plot;
    fs::path resume;
    std::size_t epochs = 10;
    float lr = 0.05f;
    float momentum = 0.f;
    float weight_decay = 0.f;
    std::size_t batch_size = 128;
    std::uint64_t seed = 42;
    int threads = vgg::detail::max_threads();
    std::size_t resize = 224;
    std::size_t ratio = 4;
    std::size_t limit_train = 0;
    std::size_t limit_test = 0;
    vgg::precision precision = vgg::precision::fp32;
};

using vgg_train::metric_point;

/// The processes training together: one, or the ranks of an MPI job. Only rank 0 prints and
/// writes files.
struct team {
    int rank = 0, size = 1;
    bool leader() const { return rank == 0; }
    /// This process's share of `count` consecutive examples.
    vgg::detail::range share(std::size_t count) const
    {
        return vgg::detail::partition(count, std::size_t(size), std::size_t(rank));
    }
    /// Sums `values` over the processes.
    void sum([[maybe_unused]] std::span<double> values) const
    {
#ifdef VGG_WITH_MPI
        if (size > 1)
            vgg::distributed::sum_over_ranks(values);
#endif
    }
};

std::string csv_text(const std::vector<metric_point>& history)
{
    std::ostringstream out;
    out << "epoch,train_loss,train_acc,test_acc\n";
    auto cell = [&](double v) {
        if (!std::isnan(v))
            out << v;
    };
    for (const auto& p : history) {
        out << p.epoch << ',';
        cell(p.train_loss);
        out << ',';
        cell(p.train_acc);
        out << ',';
        cell(p.test_acc);
        out << '\n';
    }
    return out.str();
}

std::string plot_svg(const std::vector<metric_point>& history, std::size_t epochs)
{
    // d2l's Animator legend and line styles: 'b-', 'm--', 'g-.'.
    std::vector<vgg::io::plot_series> series{{"train loss", "#1f77b4", "", {}},
                                             {"train acc", "#bf00bf", "6,4", {}},
                                             {"test acc", "#008000", "8,3,2,3", {}}};
    for (const auto& p : history) {
        if (!std::isnan(p.train_loss))
            series[0].points.emplace_back(p.epoch, p.train_loss);
        if (!std::isnan(p.train_acc))
            series[1].points.emplace_back(p.epoch, p.train_acc);
        if (!std::isnan(p.test_acc))
            series[2].points.emplace_back(p.epoch, p.test_acc);
    }
    return vgg::io::svg_line_plot(series, "epoch", 1, double(epochs));
}

/// Accuracy on the test set; each process of the team tests its own share of it.
template <class Net, class Images>
double test_accuracy(Net& net, const vgg::data::image_set& test, const vgg::data::bilinear_resizer& resizer,
                     std::size_t batch_size, vgg::precision precision, const team& group, std::ostream& out,
                     bool terminal)
{
    Images images;
    std::vector<int> labels;
    vgg::tensor<typename Net::output_shape> grad;
    const auto mine = group.share(test.size());
    std::vector<std::size_t> order(mine.size());
    std::iota(order.begin(), order.end(), mine.begin);
    const std::size_t batches = (order.size() + batch_size - 1) / batch_size;
    vgg::progress_reporter progress(out, terminal, "  test", batches);
    double correct = 0;
    for (std::size_t b = 0; b < batches; ++b) {
        const std::size_t begin = b * batch_size, count = std::min(batch_size, order.size() - begin);
        vgg::data::fill_batch(test, std::span(order).subspan(begin, count), resizer, images, labels);
        correct += double(vgg::softmax_cross_entropy(net.forward(images, {vgg::mode::eval, 0, 0, precision}), labels, grad).correct);
        progress.update(b + 1, begin + count, NAN);
    }
    progress.finish();
    group.sum(std::span(&correct, 1));
    return correct / double(test.size());
}

template <std::size_t Resize, std::size_t Ratio>
int train(const options& opt, const team& group)
{
    using net_t = vgg::VGG<vgg::shape<1, Resize, Resize>, vgg::small_conv_arch<vgg::vgg11_arch, Ratio>, 10>;
    using images_t = vgg::tensor<vgg::shape<1, Resize, Resize>>;
    std::ostream quiet(nullptr); // what the other ranks print to
    std::ostream& out = group.leader() ? std::cout : quiet;
    const bool terminal = group.leader() && ::isatty(::fileno(stdout));

    auto train_set = vgg::data::read_fashion_mnist(opt.data, "train");
    auto test_set = vgg::data::read_fashion_mnist(opt.data, "t10k");
    auto limit = [](vgg::data::image_set& set, std::size_t n) {
        if (n == 0 || n >= set.size())
            return;
        set.labels.resize(n);
        set.pixels.resize(n * set.rows * set.cols);
    };
    limit(train_set, opt.limit_train);
    limit(test_set, opt.limit_test);
    // Every rank needs a share of every batch; all ranks reach the same verdict, so all stop.
    const std::size_t last_batch = train_set.size() % opt.batch_size ? train_set.size() % opt.batch_size : opt.batch_size;
    std::string unshardable;
    if (opt.batch_size % std::size_t(group.size) != 0)
        unshardable = "--batch-size " + std::to_string(opt.batch_size) + " does not divide evenly over " +
                      std::to_string(group.size) + " MPI ranks";
    else if (last_batch < std::size_t(group.size))
        unshardable = "the last batch of an epoch holds " + std::to_string(last_batch) + " examples, fewer than the " +
                      std::to_string(group.size) + " MPI ranks: a rank would get no data (change --limit-train)";
    else if (test_set.size() < std::size_t(group.size))
        unshardable = "the test set holds " + std::to_string(test_set.size()) + " examples, fewer than the " +
                      std::to_string(group.size) + " MPI ranks: a rank would get no data (change --limit-test)";
    if (!unshardable.empty()) {
        if (group.leader())
            std::cerr << "error: " << unshardable << '\n';
        return 2;
    }
    const vgg::data::bilinear_resizer resizer(28, 28, Resize, Resize);

    auto net = std::make_unique<net_t>();
    vgg::rng init_random(opt.seed);
    net->initialize(vgg::weight_init::xavier_uniform, init_random);
#ifdef VGG_WITH_MPI
    if (group.size > 1)
        vgg::distributed::broadcast_parameters(*net);
    vgg::distributed::gradient_allreduce<net_t> gradient_sum(*net);
    double allreduce_seconds = 0;
#endif
    vgg::sgd optimiser(opt.lr, opt.momentum, opt.weight_decay);

    if (group.leader())
        fs::create_directories(opt.out);
    const fs::path checkpoint_path = opt.out / "checkpoint.safetensors";
    const fs::path plot_path = opt.plot.empty() ? opt.out / "curves.svg" : opt.plot;
    // Checked now rather than when the first epoch's curves are written, by rank 0 (which writes
    // them); every rank learns the verdict, so that none waits for one that stopped.
    const fs::path plot_folder = opt.plot.parent_path();
    double plot_folder_missing[1] = {
        group.leader() && !opt.plot.empty() && !plot_folder.empty() && !fs::is_directory(plot_folder) ? 1.0 : 0.0};
    group.sum(plot_folder_missing);
    if (plot_folder_missing[0] > 0) {
        if (group.leader())
            std::cerr << "error: --plot " << opt.plot.string() << ": the folder " << plot_folder.string()
                      << " does not exist\n";
        return vgg_cli::usage;
    }
    std::vector<metric_point> history;
    std::size_t first_epoch = 0;
    double train_seconds = 0;
    if (!opt.resume.empty()) {
        auto state = vgg_train::load_run(*net, optimiser, vgg::io::read_safetensors(opt.resume), opt.resume, Resize, Ratio);
        for (const auto& [key, value] : {std::pair{"seed", std::to_string(opt.seed)},
                                         {"batch_size", std::to_string(opt.batch_size)},
                                         {"train_examples", std::to_string(train_set.size())},
                                         {"threads", std::to_string(opt.threads)},
                                         {"ranks", std::to_string(group.size)},
                                         {"precision", std::string(to_string(opt.precision))}})
        {
            const auto found = state.metadata.find(key);
            // Checkpoints from before MPI and bf16 support were made by one process in fp32.
            const std::string older = key == std::string("ranks") ? "1" : key == std::string("precision") ? "fp32" : "?";
            const std::string made_with = found != state.metadata.end() ? found->second : older;
            if (made_with != value && group.leader())
                std::cerr << "warning: the checkpoint was made with " << key << " " << made_with << ", this run uses "
                          << value << ": the result will differ from an uninterrupted run\n";
        }
        first_epoch = state.epoch;
        train_seconds = state.train_seconds;
        history = std::move(state.history);
        out << "resumed from " << opt.resume.string() << " after epoch " << first_epoch << "\n";
    }

    const std::string workers = std::to_string(opt.threads) + " threads" +
                                (group.size > 1 ? " x " + std::to_string(group.size) + " MPI ranks" : "") + ", " +
                                std::string(to_string(opt.precision)) +
                                (opt.precision == vgg::precision::bf16
                                     ? " on " + std::string(to_string(vgg::kernels::best_bf16_kernel()))
                                     : "");
    out << "training VGG-11 (channels / " << Ratio << ") on " << train_set.size() << " Fashion-MNIST images at "
              << Resize << "x" << Resize << ", testing on " << test_set.size() << "; " << workers << "\n";
    const std::size_t batches = (train_set.size() + opt.batch_size - 1) / opt.batch_size;
    const std::size_t plot_every = std::max<std::size_t>(batches / 5, 1);
    images_t images;
    std::vector<int> labels;
    vgg::tensor<vgg::shape<10>> grad;
    std::vector<std::size_t> order(train_set.size());
    double last_loss = NAN, last_train_acc = NAN, last_test_acc = NAN;
    for (const auto& p : history) {
        last_loss = std::isnan(p.train_loss) ? last_loss : p.train_loss;
        last_train_acc = std::isnan(p.train_acc) ? last_train_acc : p.train_acc;
        last_test_acc = std::isnan(p.test_acc) ? last_test_acc : p.test_acc;
    }

    // The NaN/Inf guard: stop, say where, and leave the last good checkpoint as it is.
    auto diverged = [&](const std::string& what, std::size_t epoch, std::size_t batch) {
        if (!group.leader())
            return 3;
        std::cerr << "error: " << what << " at epoch " << epoch + 1 << ", batch " << batch + 1 << "; stopping.";
        if (fs::exists(checkpoint_path))
            std::cerr << " The last good checkpoint, " << checkpoint_path.string() << ", is untouched.";
        std::cerr << " Try a smaller --lr.\n";
        return 3;
    };

    for (std::size_t epoch = first_epoch; epoch < opt.epochs; ++epoch) {
        // The epoch's order depends only on (seed, epoch), so a resumed run sees the same batches.
        std::iota(order.begin(), order.end(), 0);
        vgg::rng shuffle(vgg::mix64(opt.seed, epoch));
        for (std::size_t i = order.size(); i > 1; --i)
            std::swap(order[i - 1], order[shuffle.below(i)]);

        vgg::progress_reporter progress(out, terminal, "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(opt.epochs), batches);
        const auto start = std::chrono::steady_clock::now();
        double loss_sum = 0;
        std::size_t correct = 0, seen = 0;
        for (std::size_t b = 0; b < batches; ++b) {
            const std::size_t begin = b * opt.batch_size, count = std::min(opt.batch_size, order.size() - begin);
            const auto mine = group.share(count); // this process's part of the batch
            vgg::data::fill_batch(train_set, std::span(order).subspan(begin + mine.begin, mine.size()), resizer, images, labels);
            const std::uint64_t step = epoch * batches + b;
            const vgg::run_context context{vgg::mode::train, vgg::mix64(opt.seed ^ 0xd209, step), mine.begin,
                                           opt.precision};
            const auto result = vgg::softmax_cross_entropy(net->forward(images, context), labels, grad);
            std::array<double, 2> totals{double(result.loss) * double(mine.size()), double(result.correct)};
            group.sum(totals);
            if (!std::isfinite(totals[0])) {
                progress.finish();
                return diverged("the loss became " + std::to_string(totals[0] / double(count)), epoch, b);
            }
#ifdef VGG_WITH_MPI
            if (group.size > 1) {
                net->backward(grad, nullptr, gradient_sum.begin(float(mine.size()) / float(count)));
                gradient_sum.finish();
                allreduce_seconds += gradient_sum.blocked_seconds();
            } else
#endif
            net->backward(grad);
            optimiser.step(*net);
            loss_sum += totals[0];
            correct += static_cast<std::size_t>(totals[1]);
            seen += count;
            progress.update(b + 1, seen, loss_sum / double(seen));
            if ((b + 1) % plot_every == 0 || b + 1 == batches) {
                last_loss = loss_sum / double(seen);
                last_train_acc = double(correct) / double(seen);
                history.push_back({double(epoch) + double(b + 1) / double(batches), last_loss, last_train_acc, NAN});
            }
        }
        progress.finish();
        const double epoch_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        train_seconds += epoch_seconds;
        last_test_acc = test_accuracy<net_t, images_t>(*net, test_set, resizer, opt.batch_size, opt.precision, group, out,
                                                       terminal);
        history.push_back({double(epoch + 1), NAN, NAN, last_test_acc});

        if (const auto bad = vgg::first_non_finite_parameter(*net); !bad.empty())
            return diverged("parameter \"" + bad + "\" became NaN or infinite", epoch, batches - 1);
        if (!group.leader())
            continue;
        std::printf("epoch %zu/%zu: loss %.3f, train acc %.3f, test acc %.3f, %.1f examples/sec on cpu (%s)\n",
                    epoch + 1, opt.epochs, last_loss, last_train_acc, last_test_acc, double(seen) / epoch_seconds,
                    workers.c_str());
#ifdef VGG_WITH_MPI
        if (group.size > 1)
            std::printf("allreduce: %.1f ms per step on average, %zu buckets, %.1f MB of gradients per rank per step\n",
                        1e3 * allreduce_seconds / double((epoch + 1 - first_epoch) * batches), gradient_sum.buckets(),
                        double(gradient_sum.gradient_bytes()) / 1e6);
#endif
        std::fflush(stdout);
        vgg::io::write_file_atomically(opt.out / "metrics.csv", csv_text(history));
        vgg::io::write_file_atomically(plot_path, plot_svg(history, opt.epochs));
        vgg::save_checkpoint(*net, optimiser, checkpoint_path,
                             {{"format", vgg_train::checkpoint_format},
                              {"epoch", std::to_string(epoch + 1)},
                              {"seed", std::to_string(opt.seed)},
                              {"resize", std::to_string(Resize)},
                              {"ratio", std::to_string(Ratio)},
                              {"batch_size", std::to_string(opt.batch_size)},
                              {"train_examples", std::to_string(train_set.size())},
                              {"threads", std::to_string(opt.threads)},
                              {"precision", std::string(to_string(opt.precision))},
                              {"ranks", std::to_string(group.size)},
                              {"train_seconds", std::to_string(train_seconds)},
                              {"history", vgg_train::to_json(history).dump()}});
    }

    if (!group.leader())
        return 0;
    // d2l's closing lines.
    std::printf("loss %.3f, train acc %.3f, test acc %.3f\n", last_loss, last_train_acc, last_test_acc);
    std::printf("%.1f examples/sec on cpu (%s)\n",
                double(train_set.size()) * double(opt.epochs) / std::max(train_seconds, 1e-9), workers.c_str());
    vgg::io::save_weights(*net, opt.out / "model.safetensors",
                          {{"resize", std::to_string(Resize)}, {"ratio", std::to_string(Ratio)}});
    std::cout << "wrote " << (opt.out / "model.safetensors").string() << ", " << checkpoint_path.string() << ", "
              << (opt.out / "metrics.csv").string() << ", " << plot_path.string() << "\n";
    return 0;
}

} // namespace

int main(int argc, char** argv)
{
#ifdef VGG_WITH_MPI
    const vgg::distributed::mpi_environment mpi(argc, argv);
    const team group{mpi.rank(), mpi.size()};
#else
    const team group;
#endif
    options opt;
    CLI::App app{"Trains the d2l VGG-11 (channels divided by --ratio) on Fashion-MNIST, as d2l's train_ch6 does."};
    app.add_option("--data", opt.data, "Folder with the Fashion-MNIST IDX files")->check(CLI::ExistingDirectory)->capture_default_str();
    app.add_option("--out", opt.out, "Folder for metrics.csv, curves.svg, checkpoint.safetensors and model.safetensors")->capture_default_str();
    app.add_option("--plot", opt.plot, "Where to write the SVG curves (default OUT/curves.svg)");
    app.add_option("--epochs", opt.epochs, "Epochs to train")->check(vgg_cli::number_in<std::size_t>(1, 100000))->capture_default_str();
    app.add_option("--lr", opt.lr, "SGD learning rate")->check(vgg_cli::above_zero())->capture_default_str();
    app.add_option("--momentum", opt.momentum, "SGD momentum")->check(vgg_cli::number_in(0.0, 0.999))->capture_default_str();
    app.add_option("--weight-decay", opt.weight_decay, "SGD weight decay")->check(vgg_cli::number_in(0.0, 1.0))->capture_default_str();
    app.add_option("--batch-size", opt.batch_size, "Examples per batch")->check(vgg_cli::number_in<std::size_t>(1, 65536))->capture_default_str();
    app.add_option("--seed", opt.seed, "Seed of initialisation, shuffling and dropout")->capture_default_str();
    app.add_option("--threads", opt.threads, "OpenMP threads")->check(vgg_cli::number_in(1, 1024))->capture_default_str();
    app.add_option("--resize", opt.resize, "Input resolution (the seed's is 224; 64 and 32 are quick)")
        ->check(CLI::IsMember({224, 64, 32}))->capture_default_str();
    app.add_option("--ratio", opt.ratio, "Divide the VGG-11 channels by this (the seed's is 4; 1 is full width)")
        ->check(CLI::IsMember({4, 1}))->capture_default_str();
    app.add_option("--limit-train", opt.limit_train, "Use only the first N training examples (0: all)")
        ->check(vgg_cli::number_in<std::size_t>(0, 1u << 30));
    app.add_option("--limit-test", opt.limit_test, "Use only the first N test examples (0: all)")
        ->check(vgg_cli::number_in<std::size_t>(0, 1u << 30));
    vgg_cli::add_precision_option(app, opt.precision);
    app.add_option("--resume", opt.resume, "Continue from this checkpoint")->check(CLI::ExistingFile);
    if (const auto code = vgg_cli::parse(app, argc, argv))
        return *code;

#ifdef _OPENMP
    omp_set_num_threads(opt.threads);
#endif
    try {
        switch (opt.resize * 10 + opt.ratio) {
        case 2244: return train<224, 4>(opt, group);
        case 2241: return train<224, 1>(opt, group);
        case 644: return train<64, 4>(opt, group);
        case 641: return train<64, 1>(opt, group);
        case 324: return train<32, 4>(opt, group);
        case 321: return train<32, 1>(opt, group);
        }
    } catch (const std::exception& e) {
        std::cerr << "error: " << (group.size > 1 ? "rank " + std::to_string(group.rank) + ": " : "") << e.what() << '\n';
#ifdef VGG_WITH_MPI
        if (group.size > 1)
            MPI_Abort(MPI_COMM_WORLD, 1); // the other ranks would otherwise wait for this one forever
#endif
        return 1;
    }
    std::cerr << "error: no preset for --resize " << opt.resize << " --ratio " << opt.ratio << '\n';
    return 2;
}
