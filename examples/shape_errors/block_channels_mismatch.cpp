// Mistake: a hand-written network whose second block says In = 32, but the first block
// produces 16 channels.
#include <vgg/vgg.hpp>

#ifdef VGG_SHOW_ERROR
using net_t = vgg::Sequential<vgg::shape<1, 32, 32>, vgg::VGGBlock<1, 1, 16>, vgg::VGGBlock<2, 32, 64>, vgg::Flatten,
                              vgg::Linear<64 * 8 * 8, 10>>;
#else
using net_t = vgg::Sequential<vgg::shape<1, 32, 32>, vgg::VGGBlock<1, 1, 16>, vgg::VGGBlock<2, 16, 64>, vgg::Flatten,
                              vgg::Linear<64 * 8 * 8, 10>>;
#endif

int main()
{
    net_t net;
    return net.layer_count == 4 ? 0 : 1;
}
