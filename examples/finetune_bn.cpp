// vgg_finetune's torchvision VGGs with batch norm, in a translation unit of their own.
#include "finetune_models.hpp"

namespace vgg_finetune {

std::unique_ptr<frozen_features> make_bn_features(const options& opt, const vgg::io::safetensors_content& weights)
{
    if (opt.model == "vgg11_bn")
        return features_at_size<vgg::vgg11_arch, true>(opt, weights);
    if (opt.model == "vgg13_bn")
        return features_at_size<vgg::vgg13_arch, true>(opt, weights);
    if (opt.model == "vgg16_bn")
        return features_at_size<vgg::vgg16_arch, true>(opt, weights);
    if (opt.model == "vgg19_bn")
        return features_at_size<vgg::vgg19_arch, true>(opt, weights);
    return nullptr;
}

} // namespace vgg_finetune
