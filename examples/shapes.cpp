// The seed's shape walk: build the full VGG-11 (conv_arch as in the seed) for 1x224x224 input,
// push one random image through it, and print each top-level layer's output shape.
#include <iostream>

#include <vgg/vgg.hpp>

int main()
{
    using net_t = vgg::VGG<vgg::shape<1, 224, 224>, vgg::vgg11_arch, 10>;
    auto net = std::make_unique<net_t>();
    vgg::rng random(0);
    net->initialize(vgg::weight_init::xavier_uniform, random);

    vgg::tensor<vgg::shape<1, 224, 224>> x(1);
    for (auto& v : x.values())
        v = random.uniform();
    net->forward(x);

    constexpr auto rows = vgg::summary<net_t>();
    net->visit_layers([&](std::size_t index, const auto& layer, const auto& output) {
        std::cout << layer.name << " output shape:\t ";
        vgg::print_shape(std::cout, output.batch(), rows[index]);
        std::cout << '\n';
    });
    std::cout << '\n';
    vgg::print_summary<net_t>(std::cout);
}
