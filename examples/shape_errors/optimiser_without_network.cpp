// Mistake: handing the optimiser something that is not a network (here a bound layer).
#include <vgg/vgg.hpp>

int main()
{
    vgg::sgd optimiser(0.1f);
#ifdef VGG_SHOW_ERROR
    vgg::linear_layer<4, 2, vgg::shape<4>> not_a_network;
    optimiser.step(not_a_network);
#else
    vgg::Sequential<vgg::shape<4>, vgg::Linear<4, 2>> net;
    optimiser.step(net);
#endif
    return 0;
}
