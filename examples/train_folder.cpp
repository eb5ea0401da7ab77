// Trains a batch-norm VGG on your own images: a folder with one sub-folder per class (the layout
// of torchvision's ImageFolder), and a second one to test on. Usage:
//     vgg_train_folder TRAIN_FOLDER TEST_FOLDER [EPOCHS]
// tools/export_image_folder.py writes Fashion-MNIST in that layout to try it. Files that do not
// decode (damaged, or not images) are skipped and listed; every other error stops the run. At the
// end the network is also quantised to int8, and its test accuracy printed beside fp32's.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <numeric>
#include <span>
#include <vector>

#include <vgg/data/image_folder.hpp>
#include <vgg/train/fit.hpp>
#include <vgg/vgg.hpp>

// The one line to change: the input shape<channels (1 grey, 3 RGB), height, width>, the
// architecture (VGG-11 with a quarter of its channels and batch norm) and your number of classes.
// At 224x224, vgg::vgg11_bn<vgg::shape<3, 224, 224>, Classes> is torchvision's vgg11_bn.
using net_t = vgg::VGG<vgg::shape<1, 32, 32>, vgg::batch_norm<vgg::small_conv_arch<vgg::vgg11_arch, 4>>, 10>;

/// The trained network quantised to int8 on the first training images (load_batch without a key
/// reads them as they are, unflipped), its test accuracy beside fp32's, and the file it is saved to.
template <class Train, class Test>
void report_int8(const net_t& net, const Train& train, const Test& test, double fp32_accuracy,
                 const std::filesystem::path& path)
{
    constexpr std::size_t calibration_images = 512, batch = 256;
    std::vector<std::size_t> order(std::max(train.size(), test.size()));
    std::iota(order.begin(), order.end(), 0);
    vgg::tensor<net_t::input_shape> calibration, images;
    std::vector<int> labels;
    train.load_batch(std::span(order).first(std::min(calibration_images, train.size())), calibration, labels);
    auto quantised = vgg::int8::quantize(net, calibration);
    std::size_t correct = 0;
    for (std::size_t begin = 0; begin < test.size(); begin += batch) {
        test.load_batch(std::span(order).subspan(begin, std::min(batch, test.size() - begin)), images, labels);
        const auto& logits = quantised.forward(images);
        for (std::size_t n = 0; n < images.batch(); ++n)
            correct += std::size_t(std::max_element(logits.sample(n), logits.sample(n) + net_t::output_shape::size) -
                                   logits.sample(n)) == std::size_t(labels[n]);
    }
    quantised.save(path);
    std::cout << "int8 (" << to_string(quantised.kernel()) << " kernels, calibrated on " << calibration.batch()
              << " training images): test accuracy " << double(correct) / double(test.size()) << ", fp32 "
              << fp32_accuracy << "; wrote " << path.string() << '\n';
}

int main(int argc, char** argv)
{
    char* end = nullptr;
    const unsigned long epochs = argc > 3 ? std::strtoul(argv[3], &end, 10) : 10;
    if (argc < 3 || argc > 4 || (argc == 4 && (*end != '\0' || epochs == 0))) {
        std::cerr << "usage: " << argv[0] << " TRAIN_FOLDER TEST_FOLDER [EPOCHS (a whole number above 0)]\n";
        return 2;
    }
    try {
        vgg::data::image_folder_options as_is;
        as_is.unreadable = vgg::data::unreadable_images::skip;
        vgg::data::image_folder_options augmented = as_is;
        augmented.random_horizontal_flip = true;
        const vgg::data::image_folder<net_t::input_shape> train(argv[1], augmented), test(argv[2], as_is);
        for (const auto* set : {&train, &test})
            for (const auto& skipped : set->skipped())
                std::cerr << "skipped: " << skipped.reason << '\n';
        std::cout << train.size() << " training images in " << train.classes() << " classes, " << test.size()
                  << " test images";
        if (const auto skipped = train.skipped().size() + test.skipped().size())
            std::cout << " (" << skipped << " unreadable files skipped)";
        std::cout << '\n';

        auto net = std::make_unique<net_t>();
        vgg::rng random(42);
        net->initialize(vgg::weight_init::xavier_uniform, random);
        vgg::sgd optimiser(0.05f, 0.9f, 5e-4f); // learning rate, momentum, weight decay
        vgg::fit_options options;
        options.epochs = epochs;
        options.out = "out-folder"; // metrics.csv, curves.svg, checkpoint.safetensors
        options.log = &std::cout;
        const vgg::fit_result result = vgg::fit(*net, optimiser, train, test, options);
        vgg::io::save_weights(*net, options.out / "model.safetensors");
        std::cout << "wrote " << (options.out / "model.safetensors").string() << " and the files above it in "
                  << options.out.string() << '\n';
        report_int8(*net, train, test, result.test_acc, options.out / "model-int8.safetensors");
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << '\n';
        return 1;
    }
}
