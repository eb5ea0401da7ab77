// vgg_predict: classifies images (PNG, JPEG, PGM, ...) or samples of an IDX file with weights
// saved by vgg_train or converted from PyTorch.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <numeric>
#include <optional>

#include <CLI/CLI.hpp>

#include <vgg/data/fashion_mnist.hpp>
#include <vgg/image/resize.hpp>
#include <vgg/io/safetensors.hpp>
#include <vgg/train/checkpoint.hpp>
#include <vgg/vgg.hpp>

#include "cli_checks.hpp"
#include "model_file.hpp"
#include "predict_common.hpp"
#include "seed_presets.hpp"

namespace fs = std::filesystem;

namespace {

using vgg_predict::options;

/// The seed network's int8 calibration images: the first --calibration-count of --calibration (an
/// IDX images file or a folder of images), by default of Fashion-MNIST's training set.
template <std::size_t Resize>
vgg::tensor<vgg::shape<1, Resize, Resize>> seed_calibration(const options& opt, const fs::path& source,
                                                            const vgg::image::bilinear_resizer& resizer)
{
    vgg::data::image_set set;
    set.rows = set.cols = 28;
    if (fs::is_directory(source)) {
        for (const auto& path : vgg_predict::calibration_files(source, opt.calibration_count)) {
            const auto pixels = vgg::image::resized_planes(vgg::image::read(path, 1), 28, 28);
            set.pixels.insert(set.pixels.end(), pixels.begin(), pixels.end());
        }
    } else {
        const auto idx = vgg::data::read_idx(source, 3);
        if (idx.dims[1] != 28 || idx.dims[2] != 28)
            throw vgg::io::file_error(source, "images are " + std::to_string(idx.dims[1]) + "x" +
                                                  std::to_string(idx.dims[2]) + ", not 28x28");
        const std::size_t count = std::min<std::size_t>(opt.calibration_count, idx.dims[0]);
        if (count == 0)
            throw vgg::io::file_error(source, "holds no images to calibrate int8 on");
        set.pixels.assign(idx.values.begin(), idx.values.begin() + long(count * 784));
    }
    set.labels.assign(set.pixels.size() / 784, 0);
    std::vector<std::size_t> order(set.size());
    std::iota(order.begin(), order.end(), 0);
    vgg::tensor<vgg::shape<1, Resize, Resize>> images;
    std::vector<int> labels;
    vgg::data::fill_batch(set, order, resizer, images, labels);
    return images;
}

template <std::size_t Resize, std::size_t Ratio>
int predict(const options& opt, vgg_examples::model_file& weights)
{
    using net_t = vgg_examples::seed_network<Resize, Ratio>;
    auto net = std::make_unique<net_t>();
    if (!weights.is_int8())
        weights.load_into(*net); // a checkpoint works too
    const vgg::image::bilinear_resizer resizer(28, 28, Resize, Resize);
    std::vector<std::string> class_names(vgg::data::fashion_mnist_classes.begin(),
                                         vgg::data::fashion_mnist_classes.end());
    if (!opt.class_file.empty())
        class_names = vgg_predict::read_class_names(opt.class_file, class_names.size());

    vgg::data::image_set set;
    set.rows = set.cols = 28;
    std::vector<std::string> names;
    if (!opt.idx.empty()) {
        const fs::path labels = !opt.labels.empty() ? opt.labels : [&] {
            std::string name = opt.idx.filename().string();
            const auto at = name.find("images-idx3");
            if (at == std::string::npos) {
                vgg::data::read_idx(opt.idx, 3); // a file that is not IDX images says so first
                throw vgg::io::file_error(opt.idx, "cannot guess the labels file beside it; pass --labels");
            }
            return opt.idx.parent_path() / name.replace(at, 11, "labels-idx1");
        }();
        set = vgg::data::read_image_set(opt.idx, labels);
        if (set.rows != 28 || set.cols != 28)
            throw vgg::io::file_error(opt.idx, "images are " + std::to_string(set.rows) + "x" +
                                                   std::to_string(set.cols) + ", not 28x28");
        if (opt.count && opt.count < set.size()) {
            set.labels.resize(opt.count);
            set.pixels.resize(opt.count * 784);
        }
    } else {
        // A file that cannot be read gets an error line; the others are still classified.
        for (const auto& path : opt.images) {
            try {
                // Grey and 28x28 first, as Fashion-MNIST's images are, then the pipeline's resize.
                const auto pixels = vgg::image::resized_planes(vgg::image::read(path, 1), 28, 28);
                set.pixels.insert(set.pixels.end(), pixels.begin(), pixels.end());
                set.labels.push_back(0);
                names.push_back(path.string());
            } catch (const vgg::io::file_error& e) {
                std::cerr << "error: " << e.what() << '\n';
            }
        }
    }

    const fs::path calibration_source =
        !opt.calibration.empty()
            ? opt.calibration
            : vgg::data::fashion_mnist_file(vgg::data::default_fashion_mnist_dir, "train", "images");
    auto quantised = vgg_predict::int8_network(opt, weights, *net, calibration_source, [&] {
        return seed_calibration<Resize>(opt, calibration_source, resizer);
    });

    vgg::tensor<vgg::shape<1, Resize, Resize>> images;
    std::vector<int> labels;
    std::vector<std::size_t> order(set.size());
    std::iota(order.begin(), order.end(), 0);
    std::size_t correct = 0;
    for (std::size_t begin = 0; begin < set.size(); begin += opt.batch) {
        const std::size_t count = std::min(opt.batch, set.size() - begin);
        vgg::data::fill_batch(set, std::span(order).subspan(begin, count), resizer, images, labels);
        const auto& logits = quantised ? quantised->forward(images)
                                       : net->forward(images, {vgg::mode::eval, 0, 0, opt.precision.products});
        for (std::size_t n = 0; n < count; ++n)
            correct += int(vgg_predict::print_scores(opt.idx.empty() ? names[begin + n] : "", logits.sample(n), 10,
                                                     class_names, opt)) == labels[n];
    }
    if (!opt.idx.empty())
        std::printf("accuracy %.4f (%zu of %zu)\n", double(correct) / double(set.size()), correct, set.size());
    return names.size() == opt.images.size() ? 0 : 1;
}

} // namespace

int main(int argc, char** argv)
{
    options opt;
    CLI::App app{
        "Classifies images with a VGG saved as safetensors: the seed's VGG-11 trained by vgg_train on "
        "Fashion-MNIST-like images, or a torchvision VGG (tools/torchvision_to_safetensors.py) on RGB photos."};
    app.add_option(
           "--weights", opt.weights,
           "Weights (model.safetensors, a checkpoint, an ONNX model: FILE.onnx, or an int8 network --save-int8 wrote)")
        ->required()
        ->check(CLI::ExistingFile);
    app.add_option(
           "--model", opt.model,
           "seed: the seed's VGG-11 at --resize and --ratio, grey images; or torchvision's vgg11, vgg13, vgg16, "
           "vgg19, vgg11_bn, vgg13_bn, vgg16_bn, vgg19_bn at 3x224x224 (RGB images, resized to 224x224 and "
           "normalised with ImageNet's mean and std)")
        ->check(
            CLI::IsMember({"seed", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"}))
        ->capture_default_str();
    app.add_option("--classes", opt.class_file, "A file naming the model's classes, one a line, for printing")
        ->check(CLI::ExistingFile);
    app.add_flag("--logits", opt.logits,
                 "Print every raw output (logit) of each image on one line instead of the top classes");
    vgg_examples::add_seed_preset_options(app, opt.resize, opt.ratio, "Input resolution the weights were trained at",
                                          "Channel divisor the weights were trained with");
    app.add_option("--top", opt.top, "Classes to print per image")
        ->check(vgg_cli::number_in<std::size_t>(1, 1000))
        ->capture_default_str();
    auto* idx = app.add_option("--idx", opt.idx, "Classify the images of this IDX file and print the accuracy")
                    ->check(CLI::ExistingFile);
    app.add_option("--labels", opt.labels, "Labels for --idx (default: the labels file beside it)")
        ->needs(idx)
        ->check(CLI::ExistingFile);
    app.add_option("--count", opt.count, "Use only the first N images of --idx (0: all)")
        ->check(vgg_cli::number_in<std::size_t>(0, 1u << 30))
        ->needs(idx);
    vgg_cli::add_inference_precision_option(app, opt.precision);
    app.add_option("--calibration", opt.calibration,
                   "With --precision int8: the images to calibrate on, an IDX images file or a folder of images "
                   "(default for --model seed: Fashion-MNIST's training images in " +
                       vgg::data::default_fashion_mnist_dir.string() + "; a torchvision model needs a folder)")
        ->check(CLI::ExistingPath);
    app.add_option("--calibration-count", opt.calibration_count,
                   "With --precision int8: calibrate on the first N images")
        ->check(vgg_cli::number_in<std::size_t>(1, 1u << 20))
        ->capture_default_str();
    app.add_option_function<std::string>(
           "--calibration-method",
           [&](const std::string& name) { opt.calibration_method = vgg::int8::calibration_method_named(name); },
           "With --precision int8: how each activation's range is chosen: max (nothing clipped), percentile "
           "(99.99% of the values), or mse (the least squared error, clipping and rounding)")
        ->check(CLI::IsMember({"max", "percentile", "mse"}))
        ->default_str("mse");
    app.add_option("--save-int8", opt.save_int8,
                   "With --precision int8: write the quantised network to this file: safetensors (s8 weights, "
                   "fp32 scales), which --weights then runs with --precision int8 without calibrating, or FILE.onnx "
                   "(ONNX in QDQ form, for ONNX Runtime and other engines)");
    app.add_option("--batch", opt.batch, "Images per forward pass")
        ->check(vgg_cli::number_in<std::size_t>(1, 4096))
        ->capture_default_str();
    auto* images = app.add_option("images", opt.images, "Image files")->check(CLI::ExistingFile);
    idx->excludes(images);
    if (const auto code = vgg_cli::parse(app, argc, argv))
        return *code;
    if (opt.idx.empty() && opt.images.empty()) {
        std::cerr << "error: give image files or --idx FILE\n";
        return 2;
    }
    const bool quantising = app.count("--calibration") || app.count("--calibration-count") ||
                            app.count("--calibration-method") || app.count("--save-int8");
    if (!opt.precision.int8 && quantising) {
        std::cerr << "error: --calibration, --calibration-count, --calibration-method and --save-int8 go with "
                     "--precision int8\n";
        return 2;
    }
    if (opt.model != "seed" && !opt.idx.empty()) {
        std::cerr << "error: --idx reads Fashion-MNIST for the seed's network; give --model " << opt.model
                  << " image files\n";
        return 2;
    }
    try {
        vgg_examples::model_file weights(opt.weights);
        if (weights.is_int8() && (!opt.precision.int8 || quantising)) {
            std::cerr << "error: " << opt.weights.string()
                      << " is an int8 network: run it with --precision int8, without --calibration, "
                         "--calibration-count, --calibration-method or --save-int8 (those quantise fp32 weights)\n";
            return 2;
        }
        if (opt.model != "seed") {
            const int status = opt.model.ends_with("_bn") ? vgg_predict::predict_torchvision_bn(opt, weights)
                                                          : vgg_predict::predict_torchvision_plain(opt, weights);
            return status >= 0 ? status : 2;
        }
        // A file that carries its preset (vgg_train writes it) must match the flags.
        const auto& metadata = weights.metadata();
        for (const auto& [key, value] : {std::pair{"resize", opt.resize}, {"ratio", opt.ratio}})
            if (metadata.count(key) && metadata.at(key) != std::to_string(value))
                throw vgg::io::file_error(opt.weights, std::string("was trained with --") + key + " " +
                                                           metadata.at(key) + ", not " + std::to_string(value));
        return vgg_examples::with_seed_preset(
            opt.resize, opt.ratio,
            [&]<std::size_t Resize, std::size_t Ratio>() { return predict<Resize, Ratio>(opt, weights); },
            vgg_cli::usage);
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << '\n';
        return 1;
    }
    return 2;
}
