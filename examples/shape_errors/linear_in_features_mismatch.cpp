// Mistake: a hand-written head whose Linear expects 128 features where Flatten gives 256.
#include <vgg/vgg.hpp>

#ifdef VGG_SHOW_ERROR
using net_t = vgg::Sequential<vgg::shape<1, 16, 16>, vgg::VGGBlock<1, 1, 16>, vgg::VGGBlock<1, 16, 16>, vgg::Flatten,
                              vgg::Linear<128, 10>>;
#else
using net_t = vgg::Sequential<vgg::shape<1, 16, 16>, vgg::VGGBlock<1, 1, 16>, vgg::VGGBlock<1, 16, 16>, vgg::Flatten,
                              vgg::Linear<256, 10>>;
#endif

int main()
{
    net_t net;
    return net.layer_count > 0 ? 0 : 1;
}
