// Mistake: the seed's head says out_channels*7*7, but the input is 1x64x64, so the blocks leave
// 2x2 pixels, not 7x7. The fix is to let VGG derive the head size (omit the last two arguments).
#include <vgg/vgg.hpp>

#ifdef VGG_SHOW_ERROR
using net_t = vgg::VGG<vgg::shape<1, 64, 64>, vgg::small_conv_arch<vgg::vgg11_arch, 4>, 10, 7, 7>;
#else
using net_t = vgg::VGG<vgg::shape<1, 64, 64>, vgg::small_conv_arch<vgg::vgg11_arch, 4>, 10>;
#endif

int main() { return net_t::parameter_count > 0 ? 0 : 1; }
