#include <filesystem>
#include <iostream>

#include <vgg/io/safetensors.hpp>
#include <vgg/vgg.hpp>

int main(int argc, char**)
{
    if (argc > 1000) { // compiled, never run: full-size layers under -Werror, without 1 GB of weights
        auto vgg16 = std::make_unique<vgg::vgg16<vgg::shape<3, 224, 224>>>();
        vgg::rng random(1);
        vgg16->initialize(vgg::weight_init::xavier_uniform, random);
        vgg16->forward(vgg::tensor<vgg::shape<3, 224, 224>>(1));
    }
    using net_t = vgg::VGG<vgg::shape<1, 32, 32>, vgg::small_conv_arch<vgg::vgg11_arch, 4>, 10>;
    auto net = std::make_unique<net_t>();
    vgg::rng random(1);
    net->initialize(vgg::weight_init::xavier_uniform, random);
    vgg::tensor<vgg::shape<1, 32, 32>> x(2);
    for (auto& v : x.values())
        v = random.uniform();
    const auto logits = net->forward(x);
    // The io component: weights out and back in give the same logits.
    const auto path = std::filesystem::temp_directory_path() / "vgg_consumer.safetensors";
    vgg::io::save_weights(*net, path);
    auto copy = std::make_unique<net_t>();
    vgg::io::load_weights(*copy, path);
    std::filesystem::remove(path);
    const bool same = copy->forward(x).values()[0] == logits.values()[0];
    std::cout << "consumer: " << logits.batch() << " x " << net_t::classes << " logits, weights round trip "
              << (same ? "ok" : "DIFFERENT") << "\n";
    return logits.batch() == 2 && same ? 0 : 1;
}
