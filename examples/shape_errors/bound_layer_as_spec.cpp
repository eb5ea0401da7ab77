// Mistake: a bound layer (what Sequential builds) written where a layer spec belongs.
#include <vgg/vgg.hpp>

#ifdef VGG_SHOW_ERROR
using net_t = vgg::Sequential<vgg::shape<1, 8, 8>, vgg::conv3x3_layer<1, 2, vgg::shape<1, 8, 8>>, vgg::Flatten>;
#else
using net_t = vgg::Sequential<vgg::shape<1, 8, 8>, vgg::Conv3x3<1, 2>, vgg::Flatten>;
#endif

int main()
{
    net_t net;
    return net.layer_count > 0 ? 0 : 1;
}
