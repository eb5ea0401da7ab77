// vgg_train: the seed's experiment. d2l's train_ch6 (vgg::fit) on Fashion-MNIST resized to 224x224
// with the small VGG-11 (channels divided by 4): Xavier-uniform init, SGD with lr 0.05, batch 128,
// 10 epochs, cross-entropy; test accuracy after every epoch; curves, CSV and checkpoints.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include <unistd.h>

#include <CLI/CLI.hpp>

#include <vgg/data/fashion_mnist.hpp>
#include <vgg/io/safetensors.hpp>
#include <vgg/train/fit.hpp>
#include <vgg/vgg.hpp>

#include "cli_checks.hpp"
#include "seed_presets.hpp"

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
    int threads = vgg::max_threads();
    std::size_t resize = 224;
    std::size_t ratio = 4;
    std::size_t limit_train = 0;
    std::size_t limit_test = 0;
    vgg::precision precision = vgg::precision::fp32;
};

/// The processes training together: one, or the ranks of an MPI job. Only rank 0 prints and
/// writes files.
struct team {
    int rank = 0, size = 1;
    bool leader() const { return rank == 0; }
};

template <std::size_t Resize, std::size_t Ratio>
int train(const options& opt, const team& group)
{
    using net_t = vgg_examples::seed_network<Resize, Ratio>;
    const vgg::data::fashion_mnist<Resize> train_set(opt.data, "train", opt.limit_train);
    const vgg::data::fashion_mnist<Resize> test_set(opt.data, "t10k", opt.limit_test);
    // Checked before fit (which would throw) for a message in the flags' words; all ranks reach
    // the same verdict, so all stop.
    if (const auto problem =
            vgg::sharding_problem(train_set.size(), test_set.size(), opt.batch_size, std::size_t(group.size));
        !problem.empty()) {
        if (group.leader())
            std::cerr << "error: " << problem
                      << " (the MPI ranks; --batch-size, --limit-train and --limit-test set the sizes)\n";
        return 2;
    }
    // Checked now rather than when the first epoch's curves are written, by rank 0 (which writes
    // them); every rank learns the verdict, so that none waits for one that stopped.
    const fs::path plot_folder = opt.plot.parent_path();
    double plot_folder_missing[1] = {
        group.leader() && !opt.plot.empty() && !plot_folder.empty() && !fs::is_directory(plot_folder) ? 1.0 : 0.0};
#ifdef VGG_WITH_MPI
    if (group.size > 1)
        vgg::distributed::sum_over_ranks(plot_folder_missing);
#endif
    if (plot_folder_missing[0] > 0) {
        if (group.leader())
            std::cerr << "error: --plot " << opt.plot.string() << ": the folder " << plot_folder.string()
                      << " does not exist\n";
        return vgg_cli::usage;
    }

    auto net = std::make_unique<net_t>();
    vgg::rng init_random(opt.seed);
    net->initialize(vgg::weight_init::xavier_uniform, init_random);
    vgg::sgd optimiser(opt.lr, opt.momentum, opt.weight_decay);

    vgg::fit_options fit;
    fit.epochs = opt.epochs;
    fit.batch_size = opt.batch_size;
    fit.seed = opt.seed;
    fit.precision = opt.precision;
    fit.out = opt.out;
    fit.plot = opt.plot;
    fit.resume = opt.resume;
    fit.identity = {{"resize", std::to_string(Resize)}, {"ratio", std::to_string(Ratio)}};
    fit.log = &std::cout;
    fit.terminal = ::isatty(::fileno(stdout));
    fit.warnings = &std::cerr;
    fit.headline = "training VGG-11 (channels / " + std::to_string(Ratio) + ") on " + std::to_string(train_set.size()) +
                   " Fashion-MNIST images at " + std::to_string(Resize) + "x" + std::to_string(Resize) +
                   ", testing on " + std::to_string(test_set.size()) + "; " +
                   vgg::workers_text(std::size_t(group.size), opt.precision);
    vgg::fit_result result;
    try {
#ifdef VGG_WITH_MPI
        if (group.size > 1)
            vgg::distributed::broadcast_parameters(*net);
        result = vgg::fit(*net, optimiser, train_set, test_set, fit, vgg::distributed::mpi_team<net_t>(*net));
#else
        result = vgg::fit(*net, optimiser, train_set, test_set, fit);
#endif
    } catch (const vgg::training_diverged& e) {
        if (group.leader())
            std::cerr << "error: " << e.what() << " Try a smaller --lr.\n";
        return 3;
    }
    if (!group.leader())
        return 0;
    if (opt.out.empty()) {
        std::cout << "wrote nothing: --out is empty\n";
        return 0;
    }
    // The weights the run ends with, trained now or (every epoch done already) from the checkpoint;
    // then the files fit wrote in this run, if any.
    vgg::io::save_weights(*net, opt.out / "model.safetensors",
                          {{"resize", std::to_string(Resize)}, {"ratio", std::to_string(Ratio)}});
    std::cout << "wrote " << (opt.out / "model.safetensors").string();
    for (const auto& path : result.written)
        std::cout << ", " << path.string();
    std::cout << "\n";
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
    app.add_option("--data", opt.data, "Folder with the Fashion-MNIST IDX files")
        ->check(CLI::ExistingDirectory)
        ->capture_default_str();
    app.add_option("--out", opt.out, "Folder for metrics.csv, curves.svg, checkpoint.safetensors and model.safetensors")
        ->capture_default_str();
    app.add_option("--plot", opt.plot, "Where to write the SVG curves (default OUT/curves.svg)");
    app.add_option("--epochs", opt.epochs, "Epochs to train")
        ->check(vgg_cli::number_in<std::size_t>(1, 100000))
        ->capture_default_str();
    app.add_option("--lr", opt.lr, "SGD learning rate")->check(vgg_cli::above_zero())->capture_default_str();
    app.add_option("--momentum", opt.momentum, "SGD momentum")
        ->check(vgg_cli::number_in(0.0, 0.999))
        ->capture_default_str();
    app.add_option("--weight-decay", opt.weight_decay, "SGD weight decay")
        ->check(vgg_cli::number_in(0.0, 1.0))
        ->capture_default_str();
    app.add_option("--batch-size", opt.batch_size, "Examples per batch")
        ->check(vgg_cli::number_in<std::size_t>(1, 65536))
        ->capture_default_str();
    app.add_option("--seed", opt.seed, "Seed of initialisation, shuffling and dropout")->capture_default_str();
    app.add_option("--threads", opt.threads, "OpenMP threads")
        ->check(vgg_cli::number_in(1, 1024))
        ->capture_default_str();
    vgg_examples::add_seed_preset_options(app, opt.resize, opt.ratio,
                                          "Input resolution (the seed's is 224; 64 and 32 are quick)",
                                          "Divide the VGG-11 channels by this (the seed's is 4; 1 is full width)");
    app.add_option("--limit-train", opt.limit_train, "Use only the first N training examples (0: all)")
        ->check(vgg_cli::number_in<std::size_t>(0, 1u << 30));
    app.add_option("--limit-test", opt.limit_test, "Use only the first N test examples (0: all)")
        ->check(vgg_cli::number_in<std::size_t>(0, 1u << 30));
    vgg_cli::add_precision_option(app, opt.precision);
    app.add_option("--resume", opt.resume, "Continue from this checkpoint")->check(CLI::ExistingFile);
    if (const auto code = vgg_cli::parse(app, argc, argv))
        return *code;

    vgg::set_threads(opt.threads);
    try {
        return vgg_examples::with_seed_preset(
            opt.resize, opt.ratio,
            [&]<std::size_t Resize, std::size_t Ratio>() { return train<Resize, Ratio>(opt, group); }, vgg_cli::usage);
    } catch (const std::exception& e) {
        std::cerr << "error: " << (group.size > 1 ? "rank " + std::to_string(group.rank) + ": " : "") << e.what()
                  << '\n';
#ifdef VGG_WITH_MPI
        if (group.size > 1)
            MPI_Abort(MPI_COMM_WORLD, 1); // the other ranks would otherwise wait for this one forever
#endif
        return 1;
    }
}
