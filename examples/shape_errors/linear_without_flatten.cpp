// Mistake: a Linear layer straight after a convolution block, without Flatten.
#include <vgg/vgg.hpp>

#ifdef VGG_SHOW_ERROR
using net_t = vgg::Sequential<vgg::shape<1, 8, 8>, vgg::VGGBlock<1, 1, 4>, vgg::Linear<64, 10>>;
#else
using net_t = vgg::Sequential<vgg::shape<1, 8, 8>, vgg::VGGBlock<1, 1, 4>, vgg::Flatten, vgg::Linear<64, 10>>;
#endif

int main()
{
    net_t net;
    return net.layer_count > 0 ? 0 : 1;
}
