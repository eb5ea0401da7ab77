#pragma once
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "vgg/core/tensor.hpp"

namespace vgg::data {

/// Where a training batch's random choices (data augmentation) come from: sample n of the batch
/// draws from (stream, first_sample + n), so the same step gives the same choices however many
/// processes share the batch, and a resumed run repeats them.
struct augmentation_key {
    std::uint64_t stream = 0;
    std::size_t first_sample = 0;
};

/// A labelled dataset as vgg::fit reads it: its size, its number of classes, the per-sample
/// shape it produces, and a batch of examples by index (images into `images`, resized to fit;
/// class numbers below classes() into `labels`). Fashion-MNIST and image folders are datasets.
/// A dataset that augments its training examples also has load_batch(indices, images, labels,
/// augmentation_key), which fit calls for training batches.
// clang-format off
template <class D>
concept dataset = requires(const D& set, std::span<const std::size_t> indices,
                           tensor<typename D::sample_shape>& images, std::vector<int>& labels) {
    { set.size() } -> std::convertible_to<std::size_t>;
    { set.classes() } -> std::convertible_to<std::size_t>;
    set.load_batch(indices, images, labels);
};
// clang-format on

/// A dataset whose samples are what a network with input shape `Shape` takes.
template <class D, class Shape>
concept dataset_for = dataset<D> && std::same_as<typename D::sample_shape, Shape>;

} // namespace vgg::data
