// Mistake: shrinking VGG-11 by a ratio of 128 leaves its 64-channel block with none.
#include <vgg/vgg.hpp>

#ifdef VGG_SHOW_ERROR
using net_t = vgg::VGG<vgg::shape<1, 32, 32>, vgg::small_conv_arch<vgg::vgg11_arch, 128>, 10>;
#else
using net_t = vgg::VGG<vgg::shape<1, 32, 32>, vgg::small_conv_arch<vgg::vgg11_arch, 64>, 10>;
#endif

int main() { return net_t::parameter_count > 0 ? 0 : 1; }
