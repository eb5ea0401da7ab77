#include <iostream>

#include <vgg/vgg.hpp>

int main()
{
    using net_t = vgg::VGG<vgg::shape<1, 32, 32>, vgg::small_conv_arch<vgg::vgg11_arch, 4>, 10>;
    auto net = std::make_unique<net_t>();
    vgg::rng random(1);
    net->initialize(vgg::weight_init::xavier_uniform, random);
    vgg::tensor<vgg::shape<1, 32, 32>> x(2);
    for (auto& v : x.values())
        v = random.uniform();
    const auto& logits = net->forward(x);
    std::cout << "consumer: " << logits.batch() << " x " << net_t::classes << " logits\n";
    return logits.batch() == 2 ? 0 : 1;
}
