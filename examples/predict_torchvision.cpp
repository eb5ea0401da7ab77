// vgg_predict's torchvision VGGs without batch norm, in a translation unit of their own.
#include <vgg/vgg.hpp>

#include "predict_common.hpp"

namespace vgg_predict {

int predict_torchvision_plain(const options& opt, vgg_examples::model_file& weights)
{
    if (opt.model == "vgg11")
        return predict_torchvision<vgg::vgg11<>>(opt, weights);
    if (opt.model == "vgg13")
        return predict_torchvision<vgg::vgg13<>>(opt, weights);
    if (opt.model == "vgg16")
        return predict_torchvision<vgg::vgg16<>>(opt, weights);
    if (opt.model == "vgg19")
        return predict_torchvision<vgg::vgg19<>>(opt, weights);
    return -1;
}

} // namespace vgg_predict
