// Mistake: five 2x2 pools need a side divisible by 32; 1x100x100 halves to 50, 25, then the
// third block's pool would drop a row of a 25-pixel image.
#include <vgg/vgg.hpp>

#ifdef VGG_SHOW_ERROR
using net_t = vgg::VGG<vgg::shape<1, 100, 100>, vgg::small_conv_arch<vgg::vgg11_arch, 4>, 10>;
#else
using net_t = vgg::VGG<vgg::shape<1, 96, 96>, vgg::small_conv_arch<vgg::vgg11_arch, 4>, 10>;
#endif

int main()
{
    net_t net;
    return net.layer_count == 13 ? 0 : 1;
}
