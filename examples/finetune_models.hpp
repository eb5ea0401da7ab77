#pragma once
// vgg_finetune's frozen features for one torchvision model and input size (finetune_common.hpp).
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <type_traits>

#include <vgg/data/image_folder.hpp>
#include <vgg/io/safetensors.hpp>
#include <vgg/vgg.hpp>

#include "finetune_common.hpp"

namespace vgg_finetune {

template <class Arch, bool BatchNorm, std::size_t Size>
class features_of_model final : public frozen_features {
    // torchvision's network with a placeholder classifier: its features are what is used.
    using net_type = vgg::TorchvisionVGG<vgg::shape<3, Size, Size>,
                                         std::conditional_t<BatchNorm, vgg::batch_norm<Arch>, Arch>, 1, 1>;
    using input = typename net_type::input_shape;
    static constexpr std::size_t pool = Arch::size; ///< the AdaptiveAvgPool2d layer, after the blocks

public:
    features_of_model(const options& opt, const vgg::io::safetensors_content& weights, std::string name)
        : name_(std::move(name)), net_(std::make_unique<net_type>()), train_(opt.train, folder_options(true)),
          test_(opt.test, folder_options(false))
    {
        net_->freeze(0, net_type::layer_count);
        const auto report = vgg::io::load_weights(
            *net_, weights, opt.weights, vgg::io::load_options::non_strict(vgg::io::names_starting_with("features.")));
        if (!report.missing.empty() || !report.mismatched.empty())
            throw vgg::io::file_error(opt.weights,
                                      "does not hold the features of torchvision's " + name_ + ": " + report.text());
    }

    void features_of(std::span<const std::size_t> indices, std::vector<int>& labels, vgg::tensor<pooled_shape>& pooled,
                     const vgg::data::augmentation_key* key, bool training) override
    {
        const auto& folder = training ? train_ : test_;
        if (key)
            folder.load_batch(indices, images_, labels, *key);
        else
            folder.load_batch(indices, images_, labels);
        const auto& features = net_->template forward_to<pool>(images_, {vgg::mode::eval, 0});
        static_assert(std::is_same_v<typename std::remove_cvref_t<decltype(features)>::shape_type, pooled_shape>,
                      "torchvision's features end in 512 channels pooled to 7x7");
        pooled.resize(features.batch());
        std::copy(features.values().begin(), features.values().end(), pooled.values().begin());
    }

    std::size_t classes(bool training) const override { return (training ? train_ : test_).classes(); }
    std::size_t size(bool training) const override { return (training ? train_ : test_).size(); }
    std::vector<std::string> class_names(bool training) const override
    {
        return (training ? train_ : test_).class_names();
    }

    std::vector<vgg::io::tensor_to_write> tensors() override
    {
        std::vector<vgg::io::tensor_to_write> tensors;
        net_->visit_parameters([&](const vgg::parameter_view& p) {
            if (p.name.rfind("features.", 0) == 0)
                tensors.push_back({p.name, p.shape, p.value, p.order});
        });
        return tensors;
    }

    std::string description() const override
    {
        std::size_t parameters = 0;
        net_->visit_parameters([&](const vgg::parameter_view& p) {
            if (p.name.rfind("features.", 0) == 0 && p.grad.size() > 0)
                parameters += p.value.size();
        });
        char text[160];
        std::snprintf(text, sizeof text, "torchvision %s at %zux%zu, its features (%.1f M parameters) frozen",
                      name_.c_str(), Size, Size, double(parameters) / 1e6);
        return text;
    }

private:
    static vgg::data::image_folder_options folder_options(bool training)
    {
        vgg::data::image_folder_options options;
        options.mean = vgg::data::imagenet_mean; // as torchvision's pretrained weights expect
        options.std = vgg::data::imagenet_std;
        options.random_horizontal_flip = training;
        options.unreadable = vgg::data::unreadable_images::skip;
        return options;
    }

    std::string name_;
    std::unique_ptr<net_type> net_;
    vgg::data::image_folder<input> train_, test_;
    vgg::tensor<input> images_;
};

/// The features of an architecture at opt.size, 224 or 64 pixels.
template <class Arch, bool BatchNorm>
std::unique_ptr<frozen_features> features_at_size(const options& opt, const vgg::io::safetensors_content& weights)
{
    if (opt.size == 224)
        return std::make_unique<features_of_model<Arch, BatchNorm, 224>>(opt, weights, opt.model);
    return std::make_unique<features_of_model<Arch, BatchNorm, 64>>(opt, weights, opt.model);
}

/// Models without batch norm (finetune_plain.cpp) and with it (finetune_bn.cpp), or null.
std::unique_ptr<frozen_features> make_plain_features(const options& opt, const vgg::io::safetensors_content& weights);
std::unique_ptr<frozen_features> make_bn_features(const options& opt, const vgg::io::safetensors_content& weights);

} // namespace vgg_finetune
