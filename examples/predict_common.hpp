#pragma once
// What vgg_predict's translation units share: its options, the printing of one image's scores,
// and the torchvision models' path (each family compiled in a translation unit of its own).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <vgg/core/precision.hpp>
#include <vgg/data/image_folder.hpp>
#include <vgg/image/resize.hpp>
#include <vgg/io/safetensors.hpp>
#include <vgg/train/checkpoint.hpp>
#include <vgg/vgg.hpp>

#include "cli_checks.hpp"
#include "model_file.hpp"

namespace vgg_predict {

struct options {
    std::string model = "seed";
    std::filesystem::path weights, class_file;
    std::size_t resize = 224, ratio = 4, top = 3, count = 0, batch = 64;
    bool logits = false;
    std::vector<std::filesystem::path> images;
    std::filesystem::path idx, labels;
    vgg_cli::inference_precision precision;
    std::filesystem::path calibration, save_int8;
    std::size_t calibration_count = 512;
    vgg::int8::calibration_method calibration_method = vgg::int8::calibration_method::mse;
};

/// Image files under `folder` (recursively, in name order): the first `count`.
inline std::vector<std::filesystem::path> calibration_files(const std::filesystem::path& folder, std::size_t count)
{
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(folder))
        if (entry.is_regular_file())
            files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    if (files.size() > count)
        files.resize(count);
    if (files.empty())
        throw vgg::io::file_error(folder, "holds no image files to calibrate int8 on");
    return files;
}

/// The int8 network `opt` asks for, or nothing for fp32 and bf16: read from `weights` when it is
/// an int8 file, else `net` quantised on the images read_calibration() returns (from `source`)
/// and saved to --save-int8 when given.
template <class Net, class ReadCalibration>
std::optional<vgg::int8::quantized_network<Net>>
int8_network(const options& opt, const vgg_examples::model_file& weights, const Net& net,
             const std::filesystem::path& source, ReadCalibration&& read_calibration)
{
    const std::string kernel(to_string(vgg::kernels::best_int8_kernel()));
    if (const auto note = vgg::kernels::int8_kernel_note(vgg::kernels::best_int8_kernel());
        !note.empty() && (weights.is_int8() || opt.precision.int8))
        std::fprintf(stderr, "int8: %s\n", note.c_str());
    if (weights.is_int8()) {
        std::fprintf(stderr, "int8: the network of %s, %s kernels\n", weights.path().c_str(), kernel.c_str());
        return std::make_optional<vgg::int8::quantized_network<Net>>(weights.template int8_network<Net>());
    }
    if (!opt.precision.int8)
        return std::nullopt;
    const vgg::tensor<typename Net::input_shape> calibration = read_calibration();
    std::fprintf(stderr, "int8: calibrating on %zu images of %s (%s), %s kernels\n", calibration.batch(),
                 source.c_str(), std::string(to_string(opt.calibration_method)).c_str(), kernel.c_str());
    auto quantised = std::make_optional<vgg::int8::quantized_network<Net>>(
        net, calibration, vgg::int8::quantize_options{.method = opt.calibration_method});
    if (!opt.save_int8.empty()) {
        vgg_examples::save_int8_network(*quantised, opt.save_int8);
        std::fprintf(stderr, "int8: saved the network to %s\n", opt.save_int8.c_str());
    }
    return quantised;
}

/// One name a line from `path`; there must be exactly `classes` of them.
inline std::vector<std::string> read_class_names(const std::filesystem::path& path, std::size_t classes)
{
    std::ifstream in(path);
    if (!in)
        throw vgg::io::file_error(path, "cannot open for reading");
    std::vector<std::string> names;
    for (std::string line; std::getline(in, line);)
        if (!line.empty())
            names.push_back(line.back() == '\r' ? line.substr(0, line.size() - 1) : line);
    if (names.size() != classes)
        throw vgg::io::file_error(path, "names " + std::to_string(names.size()) + " classes, but the model has " +
                                            std::to_string(classes));
    return names;
}

/// "NAME: class p, class p" for the top classes by softmax probability, or with --logits
/// "NAME: z0 z1 ..." (every raw output, to compare with PyTorch's). Returns the best class.
/// Outputs that are NaN or infinite are an error (std::runtime_error), never probabilities.
inline std::size_t print_scores(const std::string& name, const float* z, std::size_t classes,
                                const std::vector<std::string>& class_names, const options& opt)
{
    if (!std::all_of(z, z + classes, [](float v) { return std::isfinite(v); }))
        throw std::runtime_error((name.empty() ? std::string("an image") : name) +
                                 ": the network's outputs are not finite (NaN or infinity): its weights overflow or "
                                 "hold NaN");
    if (opt.logits) {
        std::cout << name << ':';
        for (std::size_t k = 0; k < classes; ++k)
            std::printf(" %.7g", double(z[k]));
        std::cout << '\n';
    }
    const float top = *std::max_element(z, z + classes);
    std::vector<double> p(classes);
    double sum = 0;
    for (std::size_t k = 0; k < classes; ++k)
        sum += p[k] = std::exp(double(z[k] - top));
    std::vector<std::size_t> rank(classes);
    std::iota(rank.begin(), rank.end(), 0);
    std::stable_sort(rank.begin(), rank.end(), [&](std::size_t a, std::size_t b) { return p[a] > p[b]; });
    if (!opt.logits && !name.empty()) {
        const std::size_t shown = std::min(opt.top, classes);
        std::cout << name << ':';
        for (std::size_t k = 0; k < shown; ++k)
            std::printf(" %s %.3f%s", class_names[rank[k]].c_str(), p[rank[k]] / sum, k + 1 < shown ? "," : "");
        std::cout << '\n';
    }
    return rank[0];
}

/// Classifies opt.images with a torchvision model: RGB, resized to its input size
/// (Resize((224, 224))), normalised with ImageNet's mean and std. An unreadable image gets an
/// error line and the others are still classified; returns the exit code.
template <class Net>
int predict_torchvision(const options& opt, vgg_examples::model_file& weights)
{
    using input = typename Net::input_shape;
    constexpr std::size_t classes = Net::output_shape::size, channels = input::dims[0], height = input::dims[1],
                          width = input::dims[2];
    auto net = std::make_unique<Net>();
    if (!weights.is_int8())
        weights.load_into(*net);
    std::vector<std::string> class_names(classes);
    if (!opt.class_file.empty())
        class_names = read_class_names(opt.class_file, classes);
    else
        for (std::size_t k = 0; k < classes; ++k)
            class_names[k] = "class " + std::to_string(k);

    const auto read_sample = [&](const std::filesystem::path& path, float* sample) {
        const auto planes = vgg::image::resized_planes(vgg::image::read(path, channels), height, width);
        vgg::data::planes_to_sample<input>(planes.data(), vgg::data::imagenet_mean, vgg::data::imagenet_std, sample);
    };
    auto quantised = int8_network(opt, weights, *net, opt.calibration, [&] {
        if (opt.calibration.empty() || !std::filesystem::is_directory(opt.calibration))
            throw std::invalid_argument("--precision int8 with a torchvision model needs --calibration FOLDER: a few "
                                        "hundred images like those it will classify");
        const auto files = calibration_files(opt.calibration, opt.calibration_count);
        vgg::tensor<input> calibration(files.size());
        for (std::size_t i = 0; i < files.size(); ++i)
            read_sample(files[i], calibration.sample(i));
        return calibration;
    });

    std::size_t failed = 0;
    for (std::size_t begin = 0; begin < opt.images.size(); begin += opt.batch) {
        const std::size_t end = std::min(begin + opt.batch, opt.images.size());
        vgg::tensor<input> images(end - begin);
        std::vector<std::string> names;
        std::size_t n = 0;
        for (std::size_t i = begin; i < end; ++i) {
            try {
                read_sample(opt.images[i], images.sample(n));
                names.push_back(opt.images[i].string());
                ++n;
            } catch (const vgg::io::file_error& e) {
                std::cerr << "error: " << e.what() << '\n';
                ++failed;
            }
        }
        if (n == 0)
            continue;
        images.resize(n);
        const auto& logits = quantised ? quantised->forward(images)
                                       : net->forward(images, {vgg::mode::eval, 0, 0, opt.precision.products});
        for (std::size_t k = 0; k < n; ++k)
            print_scores(names[k], logits.sample(k), classes, class_names, opt);
    }
    return failed ? 1 : 0;
}

/// torchvision's vgg11, vgg13, vgg16 and vgg19 (predict_torchvision.cpp): the exit code, or -1
/// when `opt.model` is none of them.
int predict_torchvision_plain(const options& opt, vgg_examples::model_file& weights);
/// vgg11_bn ... vgg19_bn (predict_torchvision_bn.cpp), likewise.
int predict_torchvision_bn(const options& opt, vgg_examples::model_file& weights);

} // namespace vgg_predict
