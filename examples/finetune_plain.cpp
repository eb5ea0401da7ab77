// vgg_finetune's torchvision VGGs without batch norm, in a translation unit of their own.
#include "finetune_models.hpp"

namespace vgg_finetune {

std::unique_ptr<frozen_features> make_plain_features(const options& opt, const vgg::io::safetensors_content& weights)
{
    if (opt.model == "vgg11")
        return features_at_size<vgg::vgg11_arch, false>(opt, weights);
    if (opt.model == "vgg13")
        return features_at_size<vgg::vgg13_arch, false>(opt, weights);
    if (opt.model == "vgg16")
        return features_at_size<vgg::vgg16_arch, false>(opt, weights);
    if (opt.model == "vgg19")
        return features_at_size<vgg::vgg19_arch, false>(opt, weights);
    return nullptr;
}

} // namespace vgg_finetune
