// Trains a batch-norm VGG on your own images: a folder with one sub-folder per class (the layout
// of torchvision's ImageFolder), and a second one to test on. Usage:
//     vgg_train_folder TRAIN_FOLDER TEST_FOLDER [EPOCHS]
// tools/export_image_folder.py writes Fashion-MNIST in that layout to try it. Files that do not
// decode (damaged, or not images) are skipped and listed; every other error stops the run.
#include <cstdlib>
#include <iostream>
#include <memory>

#include <vgg/data/image_folder.hpp>
#include <vgg/train/fit.hpp>
#include <vgg/vgg.hpp>

// The one line to change: the input shape<channels (1 grey, 3 RGB), height, width>, the
// architecture (VGG-11 with a quarter of its channels and batch norm) and your number of classes.
// At 224x224, vgg::vgg11_bn<vgg::shape<3, 224, 224>, Classes> is torchvision's vgg11_bn.
using net_t = vgg::VGG<vgg::shape<1, 32, 32>, vgg::batch_norm<vgg::small_conv_arch<vgg::vgg11_arch, 4>>, 10>;

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
        vgg::fit(*net, optimiser, train, test, options);
        vgg::io::save_weights(*net, options.out / "model.safetensors");
        std::cout << "wrote " << (options.out / "model.safetensors").string() << " and the files above it in "
                  << options.out.string() << '\n';
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << '\n';
        return 1;
    }
}
