// vgg_predict's torchvision VGGs with batch norm, in a translation unit of their own.
#include <vgg/vgg.hpp>

#include "predict_common.hpp"

namespace vgg_predict {

int predict_torchvision_bn(const options& opt, vgg_examples::model_file& weights)
{
    if (opt.model == "vgg11_bn")
        return predict_torchvision<vgg::vgg11_bn<>>(opt, weights);
    if (opt.model == "vgg13_bn")
        return predict_torchvision<vgg::vgg13_bn<>>(opt, weights);
    if (opt.model == "vgg16_bn")
        return predict_torchvision<vgg::vgg16_bn<>>(opt, weights);
    if (opt.model == "vgg19_bn")
        return predict_torchvision<vgg::vgg19_bn<>>(opt, weights);
    return -1;
}

} // namespace vgg_predict
