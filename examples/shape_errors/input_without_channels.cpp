// Mistake: a one-channel image given as shape<Height, Width>, without its channel count.
#include <vgg/vgg.hpp>

#ifdef VGG_SHOW_ERROR
using net_t = vgg::Sequential<vgg::shape<8, 8>, vgg::Conv3x3<1, 4>, vgg::Flatten, vgg::Linear<256, 10>>;
#else
using net_t = vgg::Sequential<vgg::shape<1, 8, 8>, vgg::Conv3x3<1, 4>, vgg::Flatten, vgg::Linear<256, 10>>;
#endif

int main()
{
    net_t net;
    return net.layer_count > 0 ? 0 : 1;
}
