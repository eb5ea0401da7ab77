// Mistake: quantising to int8 a network with a layer int8 quantisation does not take (a
// MaxPool2x2 of its own: VGG blocks pool inside).
#include <vgg/vgg.hpp>

#ifdef VGG_SHOW_ERROR
using net_t =
    vgg::Sequential<vgg::shape<1, 8, 8>, vgg::VGGBlock<1, 1, 4>, vgg::MaxPool2x2, vgg::Flatten, vgg::Linear<16, 2>>;
#else
using net_t = vgg::Sequential<vgg::shape<1, 8, 8>, vgg::VGGBlock<1, 1, 4>, vgg::Flatten, vgg::Linear<64, 2>>;
#endif

int main()
{
    net_t net;
    vgg::tensor<net_t::input_shape> calibration(2);
    auto quantised = vgg::int8::quantize(net, calibration);
    return quantised.forward(calibration).batch() == 2 ? 0 : 1;
}
