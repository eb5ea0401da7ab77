// vgg_finetune: fine-tunes a torchvision VGG on a folder of images. It loads the features of a
// torchvision file (tools/torchvision_to_safetensors.py output, or a state_dict saved as
// safetensors), freezes them, sizes the classifier's last layer to the folder's classes, trains
// the classifier with AdamW and a cosine schedule through vgg::fit, and writes OUT/model.safetensors
// under torchvision's names (the frozen tensors as the file held them).
#include <cstdio>
#include <iostream>
#include <memory>
#include <utility>

#include <unistd.h>

#include <CLI/CLI.hpp>

#include <vgg/train/fit.hpp>
#include <vgg/vgg.hpp>

#include "cli_checks.hpp"
#include "finetune_models.hpp"

namespace {

using vgg_finetune::options;
using vgg_finetune::pooled_shape;

/// The fewest and the most classes vgg_finetune is built for (each count is a type of its own).
constexpr std::size_t fewest_classes = 2, most_classes = 10;

/// torchvision's classifier for `Classes` classes (vgg_classifier) after a Flatten, named
/// "classifier.0.weight" ... "classifier.6.bias" as in torchvision.
template <std::size_t Classes>
class classifier : public vgg::sequential_of_lists<pooled_shape, vgg::layer_list<vgg::Flatten>,
                                                   vgg::vgg_classifier<pooled_shape::size, Classes>> {
    using base = vgg::sequential_of_lists<pooled_shape, vgg::layer_list<vgg::Flatten>,
                                          vgg::vgg_classifier<pooled_shape::size, Classes>>;

public:
    template <class Visitor>
    void visit_parameters(Visitor&& visit)
    {
        base::visit_parameters([&](vgg::parameter_view p) {
            p.name = "classifier." + std::to_string(p.layer - 1) + p.name.substr(p.name.rfind('.'));
            visit(p);
        });
    }
};

template <std::size_t Classes>
int train(const options& opt, const vgg::io::safetensors_content& weights, vgg_finetune::frozen_features& features)
{
    auto head = std::make_unique<classifier<Classes>>();
    vgg::rng random(opt.seed);
    head->initialize(vgg::weight_init::pytorch_default, random);
    // The hidden layers come from the file where it has them; the last one is new unless the file
    // was made for as many classes.
    auto report = vgg::io::load_weights(*head, weights, opt.weights,
                                        vgg::io::load_options::non_strict(vgg::io::names_starting_with("classifier.")));
    std::erase_if(report.unexpected, [](const std::string& name) { return name.rfind("features.", 0) == 0; });
    std::cout << "classifier from " << opt.weights.string() << ": " << report.text() << "\n";

    const vgg_finetune::features_dataset train_set(features, true), test_set(features, false);
    vgg::adamw optimiser(opt.lr, 0.9f, 0.999f, 1e-8f, opt.weight_decay);
    vgg::fit_options fit;
    fit.epochs = opt.epochs;
    fit.batch_size = opt.batch_size;
    fit.seed = opt.seed;
    fit.out = opt.out;
    const std::size_t batches = (train_set.size() + opt.batch_size - 1) / opt.batch_size;
    fit.schedule = vgg::lr_schedule::cosine(opt.epochs * batches, 0.f, vgg::schedule_unit::step);
    fit.identity = {{"model", opt.model}, {"size", std::to_string(opt.size)}};
    fit.log = &std::cout;
    fit.terminal = ::isatty(STDOUT_FILENO);
    fit.headline = features.description() + "; training the classifier for " + std::to_string(Classes) +
                   " classes with AdamW (lr " + vgg::shortest_text(opt.lr) + ", weight decay " +
                   vgg::shortest_text(opt.weight_decay) + ") and a cosine schedule";
    const auto result = vgg::fit(*head, optimiser, train_set, test_set, fit);

    const auto path = opt.out / "model.safetensors";
    auto tensors = features.tensors();
    for (auto& tensor : vgg::io::finite_parameter_tensors(*head, path))
        tensors.push_back(std::move(tensor));
    vgg::io::write_safetensors(path, tensors, {{"model", opt.model}, {"size", std::to_string(opt.size)}});
    std::cout << "wrote " << path.string();
    for (const auto& written : result.written)
        std::cout << ", " << written.string();
    std::cout << "\n";
    return vgg_cli::success;
}

template <std::size_t... K>
int train_for_classes(std::size_t classes, const options& opt, const vgg::io::safetensors_content& weights,
                      vgg_finetune::frozen_features& features, std::index_sequence<K...>)
{
    int code = -1;
    ((classes == fewest_classes + K ? (code = train<fewest_classes + K>(opt, weights, features)) : 0), ...);
    return code;
}

} // namespace

int main(int argc, char** argv)
{
    options opt;
    CLI::App app{"Fine-tunes a torchvision VGG on a folder of images: frozen features, a new classifier."};
    app.add_option("--model", opt.model, "torchvision model of the weights")
        ->check(CLI::IsMember({"vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"}))
        ->capture_default_str();
    app.add_option("--weights", opt.weights, "torchvision weights as safetensors (a state_dict, or converter output)")
        ->required()
        ->check(CLI::ExistingFile);
    app.add_option("--train", opt.train, "Training images: one sub-folder per class")
        ->required()
        ->check(CLI::ExistingDirectory);
    app.add_option("--test", opt.test, "Test images, with the same class folders")
        ->required()
        ->check(CLI::ExistingDirectory);
    app.add_option("--size", opt.size,
                   "Input size: 224 as torchvision's models are trained, or 64 to try it in minutes")
        ->check(CLI::IsMember({224, 64}))
        ->capture_default_str();
    app.add_option("--epochs", opt.epochs, "Epochs to train")
        ->check(vgg_cli::number_in<std::size_t>(1, 100000))
        ->capture_default_str();
    app.add_option("--lr", opt.lr, "AdamW's learning rate, annealed to 0 by a cosine schedule")
        ->check(vgg_cli::above_zero())
        ->capture_default_str();
    app.add_option("--weight-decay", opt.weight_decay, "AdamW's decoupled weight decay")
        ->check(vgg_cli::number_in(0.f, 1.f))
        ->capture_default_str();
    app.add_option("--batch-size", opt.batch_size, "Images per batch")
        ->check(vgg_cli::number_in<std::size_t>(1, 4096))
        ->capture_default_str();
    app.add_option("--seed", opt.seed, "Seed of the classifier's initialisation, shuffling, flips and dropout")
        ->capture_default_str();
    app.add_option("--threads", opt.threads, "OpenMP threads")
        ->check(vgg_cli::number_in<std::size_t>(1, 1024))
        ->capture_default_str();
    app.add_option("--out", opt.out, "Folder for model.safetensors, metrics.csv, curves.svg and checkpoint.safetensors")
        ->capture_default_str();
    if (const auto code = vgg_cli::parse(app, argc, argv))
        return *code;
    vgg::set_threads(static_cast<int>(opt.threads));
    try {
        const auto weights = vgg::io::read_safetensors(opt.weights);
        auto features = vgg_finetune::make_plain_features(opt, weights);
        if (!features)
            features = vgg_finetune::make_bn_features(opt, weights);
        const std::size_t classes = features->classes(true);
        std::cout << features->size(true) << " training images in " << classes << " classes, " << features->size(false)
                  << " test images\n";
        const int code = train_for_classes(classes, opt, weights, *features,
                                           std::make_index_sequence<most_classes - fewest_classes + 1>{});
        if (code >= 0)
            return code;
        std::cerr << "error: " << opt.train.string() << " has " << classes << " classes; vgg_finetune is built for "
                  << fewest_classes << " to " << most_classes << " (the class count is a type: for another, use "
                  << "vgg::vgg16_bn<vgg::shape<3, 224, 224>, Classes> in a program of your own, as the README shows)\n";
        return vgg_cli::usage;
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << '\n';
        return vgg_cli::failure;
    }
}
