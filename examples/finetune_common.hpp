#pragma once
// What vgg_finetune's translation units share. The network is split in two: the frozen
// torchvision features (one type per model and input size, in finetune_models.cpp) and the
// classifier (one type per class count, in finetune.cpp), so that the class count, known only
// from the image folder, multiplies the cheap part. fit trains the classifier on batches that
// features_dataset passes through the frozen features.
#include <cstddef>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <vgg/core/tensor.hpp>
#include <vgg/data/image_folder.hpp>
#include <vgg/io/safetensors.hpp>

namespace vgg_finetune {

struct options {
    std::string model = "vgg11_bn";
    std::filesystem::path weights, train, test, out = "out-finetune";
    std::size_t size = 224, epochs = 5, batch_size = 64, threads = 2;
    float lr = 1e-4f, weight_decay = 1e-2f;
    std::uint64_t seed = 42;
};

/// What every torchvision VGG's features give its classifier: 512 channels pooled to 7x7.
using pooled_shape = vgg::shape<512, 7, 7>;

/// A model's frozen features with its weights loaded: pooled features of a batch of images read
/// from a folder, and the loaded tensors (under torchvision's names) to write with the classifier.
class frozen_features {
public:
    virtual ~frozen_features() = default;
    /// Loads the images `indices` of the training or test folder (augmented with `key` when not
    /// null) with their labels, and writes their pooled features to `pooled`.
    virtual void features_of(std::span<const std::size_t> indices, std::vector<int>& labels,
                             vgg::tensor<pooled_shape>& pooled, const vgg::data::augmentation_key* key,
                             bool training) = 0;
    virtual std::size_t classes(bool training) const = 0;
    virtual std::size_t size(bool training) const = 0;
    virtual std::vector<std::string> class_names(bool training) const = 0;
    virtual std::vector<vgg::io::tensor_to_write> tensors() = 0;
    /// "torchvision vgg16_bn, 14.7 M parameters frozen, 64x64 RGB input".
    virtual std::string description() const = 0;
};

/// The training or the test images as fit's dataset: samples are their pooled features.
class features_dataset {
public:
    using sample_shape = pooled_shape;
    features_dataset(frozen_features& features, bool training) : features_(&features), training_(training) {}
    std::size_t size() const { return features_->size(training_); }
    std::size_t classes() const { return features_->classes(training_); }
    std::vector<std::string> class_names() const { return features_->class_names(training_); }
    void load_batch(std::span<const std::size_t> indices, vgg::tensor<sample_shape>& pooled,
                    std::vector<int>& labels) const
    {
        features_->features_of(indices, labels, pooled, nullptr, training_);
    }
    void load_batch(std::span<const std::size_t> indices, vgg::tensor<sample_shape>& pooled, std::vector<int>& labels,
                    const vgg::data::augmentation_key& key) const
    {
        features_->features_of(indices, labels, pooled, &key, training_);
    }

private:
    frozen_features* features_;
    bool training_;
};

} // namespace vgg_finetune
