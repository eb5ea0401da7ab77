#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vgg/core/tensor.hpp"
#include "vgg/data/idx.hpp"
#include "vgg/detail/parallel.hpp"
#include "vgg/image/bilinear_resizer.hpp"

namespace vgg::data {

/// Where Debian's dataset-fashion-mnist package puts the data.
inline const std::filesystem::path default_fashion_mnist_dir = "/usr/share/datasets/fashion-mnist";

inline constexpr std::array<std::string_view, 10> fashion_mnist_classes = {
    "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"};

/// Images (28x28 bytes each, row-major) and their labels.
struct image_set {
    std::size_t rows = 0, cols = 0;
    std::vector<std::uint8_t> pixels;
    std::vector<int> labels;
    std::size_t size() const { return labels.size(); }
    const std::uint8_t* image(std::size_t i) const { return pixels.data() + i * rows * cols; }
};

/// Reads an images file and its labels file and checks that they agree: the same count, and
/// every label a class below `classes`.
inline image_set read_image_set(const std::filesystem::path& images_path, const std::filesystem::path& labels_path,
                                int classes = 10)
{
    auto images = read_idx(images_path, 3);
    const auto labels = read_idx(labels_path, 1);
    if (images.dims[0] != labels.dims[0])
        throw io::file_error(labels_path, "has " + std::to_string(labels.dims[0]) + " labels, but " +
                                              images_path.string() + " has " + std::to_string(images.dims[0]) +
                                              " images");
    image_set set;
    set.rows = images.dims[1];
    set.cols = images.dims[2];
    set.pixels = std::move(images.values);
    set.labels.assign(labels.values.begin(), labels.values.end());
    for (std::size_t i = 0; i < set.labels.size(); ++i)
        if (set.labels[i] >= classes)
            throw io::file_error(labels_path, "label " + std::to_string(set.labels[i]) + " of example " +
                                                  std::to_string(i) + " is not a class below " +
                                                  std::to_string(classes));
    return set;
}

/// The path of one of the four Fashion-MNIST files in `dir`: "train" or "t10k", "images" or
/// "labels". The gzip files Debian ships are preferred; uncompressed ones are found too.
inline std::filesystem::path fashion_mnist_file(const std::filesystem::path& dir, std::string_view split,
                                                std::string_view kind)
{
    const std::string stem =
        std::string(split) + "-" + std::string(kind) + (kind == "images" ? "-idx3-ubyte" : "-idx1-ubyte");
    const auto gz = dir / (stem + ".gz");
    return std::filesystem::exists(gz) || !std::filesystem::exists(dir / stem) ? gz : dir / stem;
}

/// Reads the training ("train") or test ("t10k") split of Fashion-MNIST from `dir`.
inline image_set read_fashion_mnist(const std::filesystem::path& dir, std::string_view split)
{
    auto set = read_image_set(fashion_mnist_file(dir, split, "images"), fashion_mnist_file(dir, split, "labels"));
    if (set.rows != 28 || set.cols != 28)
        throw io::file_error(fashion_mnist_file(dir, split, "images"), "images are " + std::to_string(set.rows) + "x" +
                                                                           std::to_string(set.cols) +
                                                                           ", Fashion-MNIST's are 28x28");
    return set;
}

} // namespace vgg::data

namespace vgg::data {

/// Fills `images` with the examples `indices` of `set`, resized as torchvision's
/// Resize + ToTensor would, and `labels` with their labels. Images are resized in parallel.
template <std::size_t Height, std::size_t Width>
void fill_batch(const image_set& set, std::span<const std::size_t> indices, const image::bilinear_resizer& resizer,
                tensor<shape<1, Height, Width>>& images, std::vector<int>& labels)
{
    images.resize(indices.size());
    labels.resize(indices.size());
    for (std::size_t n = 0; n < indices.size(); ++n)
        labels[n] = set.labels[indices[n]];
    // About 16 operations an output pixel: two 2-tap passes and the conversion.
    vgg::detail::parallel_ranges(
        indices.size(), 16 * Height * Width, [&](std::size_t, std::size_t, vgg::detail::range part) {
            std::vector<std::uint8_t> scratch, resized;
            for (std::size_t n = part.begin; n < part.end; ++n)
                resizer.resize_to_unit(set.image(indices[n]), images.sample(n), scratch, resized);
        });
}

} // namespace vgg::data

namespace vgg::data {

/// One split of Fashion-MNIST as a dataset (dataset.hpp) of 1xHeightxWidth images, resized as
/// d2l's transforms.Resize + ToTensor do (the seed reads it at 224x224).
template <std::size_t Height, std::size_t Width = Height>
class fashion_mnist {
public:
    using sample_shape = shape<1, Height, Width>;

    /// Reads `split` ("train" or "t10k") from `dir`; `limit` keeps only the first examples (0: all).
    fashion_mnist(const std::filesystem::path& dir, std::string_view split, std::size_t limit = 0)
        : set_(read_fashion_mnist(dir, split)), resizer_(set_.rows, set_.cols, Height, Width)
    {
        if (limit > 0 && limit < set_.size()) {
            set_.labels.resize(limit);
            set_.pixels.resize(limit * set_.rows * set_.cols);
        }
    }

    std::size_t size() const { return set_.size(); }
    std::size_t classes() const { return fashion_mnist_classes.size(); }
    void load_batch(std::span<const std::size_t> indices, tensor<sample_shape>& images, std::vector<int>& labels) const
    {
        fill_batch(set_, indices, resizer_, images, labels);
    }

private:
    image_set set_;
    image::bilinear_resizer resizer_;
};

} // namespace vgg::data
