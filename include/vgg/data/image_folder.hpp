#pragma once
// A folder of image files as a dataset, laid out as torchvision's ImageFolder reads it. Part of
// the vgg::image component (it decodes with libjpeg-turbo and stb_image).
#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "vgg/core/rng.hpp"
#include "vgg/core/shape.hpp"
#include "vgg/core/tensor.hpp"
#include "vgg/data/dataset.hpp"
#include "vgg/detail/parallel.hpp"
#include "vgg/image/resize.hpp"
#include "vgg/io/error.hpp"

namespace vgg::data {

/// ImageNet's per-channel mean and standard deviation, the normalisation torchvision's
/// pretrained models expect (transforms.Normalize).
inline const std::vector<float> imagenet_mean{0.485f, 0.456f, 0.406f}, imagenet_std{0.229f, 0.224f, 0.225f};

/// The file name endings image_folder takes as images (compared without regard to case).
inline constexpr std::array<std::string_view, 6> image_folder_extensions{".jpg", ".jpeg", ".png",
                                                                         ".pgm", ".ppm",  ".bmp"};

/// The extensions as an error message lists them: ".jpg .jpeg ...".
inline std::string image_folder_extension_list()
{
    std::string list;
    for (const auto extension : image_folder_extensions) {
        if (!list.empty())
            list += ' ';
        list += extension;
    }
    return list;
}

/// A resized image's planes (image::resized_planes) as one sample of `Shape`: scaled to [0, 1]
/// and normalised by the per-channel `mean` and `std` (both empty: not normalised), as ToTensor
/// and Normalize do. `flip` mirrors the image and (shift_y, shift_x) moves the window it is read
/// through, zeros coming in from outside: RandomHorizontalFlip and RandomCrop's choices.
template <class Shape>
void planes_to_sample(const std::uint8_t* planes, const std::vector<float>& mean, const std::vector<float>& std,
                      float* out, bool flip = false, long shift_y = 0, long shift_x = 0)
{
    constexpr std::size_t height = image_dims<Shape>::height, width = image_dims<Shape>::width, plane = height * width;
    for (std::size_t c = 0; c < image_dims<Shape>::channels; ++c) {
        const float scale = mean.empty() ? 1.f / 255.f : 1.f / (255.f * std[c]);
        const float offset = mean.empty() ? 0.f : mean[c] / std[c];
        for (std::size_t y = 0; y < height; ++y)
            for (std::size_t x = 0; x < width; ++x) {
                const long from_y = long(y) + shift_y;
                const long from_x = long(flip ? width - 1 - x : x) + shift_x;
                const bool inside = from_y >= 0 && from_y < long(height) && from_x >= 0 && from_x < long(width);
                const float byte = inside ? planes[c * plane + std::size_t(from_y) * width + std::size_t(from_x)] : 0.f;
                out[c * plane + y * width + x] = byte * scale - offset;
            }
    }
}

/// What image_folder does with a file it cannot decode (damaged, or not an image at all).
enum class unreadable_images {
    stop, ///< an error naming the file (the default: a dataset is what its folder holds)
    skip, ///< left out, and listed in image_folder::skipped(); every file is decoded once to find them
};

/// A file image_folder left out, and why.
struct skipped_image {
    std::filesystem::path file;
    std::string reason;
};

/// How image_folder turns files into samples, after torchvision's Resize((H, W)) and ToTensor().
struct image_folder_options {
    /// Per-channel (x - mean) / std after scaling to [0, 1], as transforms.Normalize (empty: none).
    std::vector<float> mean, std;
    /// Training batches only: transforms.RandomHorizontalFlip(), each image mirrored with probability 1/2.
    bool random_horizontal_flip = false;
    /// Training batches only: transforms.RandomCrop((H, W), padding): zeros around the image on
    /// every side, then a random HxW window of it (0: no crop).
    std::size_t random_crop_padding = 0;
    /// The resized images are decoded once and kept when they fit in this many bytes; otherwise
    /// every batch decodes its files.
    std::size_t cache_bytes = std::size_t(4) << 30;
    unreadable_images unreadable = unreadable_images::stop;
};

/// torchvision's ImageFolder: under `root`, one sub-folder per class, classes numbered in the
/// order of their names; in each, image files (image_folder_extensions), sub-folders included.
/// Every image is read as grey or RGB as Shape says (shape<1, H, W> or shape<3, H, W>), resized
/// to H x W, scaled to [0, 1] and normalised as the options say. Images are decoded in parallel
/// and kept in memory when they fit. A file that cannot be read is an error naming it, or, with
/// unreadable_images::skip, left out and listed in skipped().
template <class Shape>
class image_folder {
    static_assert(
        is_image_shape_v<Shape> && (image_dims<Shape>::channels == 1 || image_dims<Shape>::channels == 3),
        "image_folder<Shape>: Shape must be shape<1, Height, Width> (grey) or shape<3, Height, Width> (RGB).");
    static constexpr std::size_t channels = image_dims<Shape>::channels, height = image_dims<Shape>::height,
                                 width = image_dims<Shape>::width, plane = height * width;

public:
    using sample_shape = Shape;

    explicit image_folder(const std::filesystem::path& root, image_folder_options options = {})
        : options_(std::move(options)), root_(root)
    {
        namespace fs = std::filesystem;
        if (options_.mean.size() != options_.std.size() || (!options_.mean.empty() && options_.mean.size() != channels))
            throw std::invalid_argument("image_folder: mean and std need " + std::to_string(channels) +
                                        " values each (one per channel), got " + std::to_string(options_.mean.size()) +
                                        " and " + std::to_string(options_.std.size()));
        for (std::size_t c = 0; c < options_.mean.size(); ++c)
            if (!std::isfinite(options_.mean[c]) || !std::isfinite(options_.std[c]) || !(options_.std[c] > 0))
                throw std::invalid_argument("image_folder: channel " + std::to_string(c) + " has mean " +
                                            std::to_string(options_.mean[c]) + " and std " +
                                            std::to_string(options_.std[c]) +
                                            ": the mean must be finite and the std finite and above 0");
        if (options_.random_crop_padding > std::max(height, width))
            throw std::invalid_argument(
                "image_folder: a random crop padding of " + std::to_string(options_.random_crop_padding) +
                " is more than the image's side (" + std::to_string(std::max(height, width)) + ")");
        if (!fs::is_directory(root))
            throw io::file_error(root, "is not a folder (an image folder holds one sub-folder of images per class)");
        for (const auto& entry : fs::directory_iterator(root))
            if (entry.is_directory())
                class_names_.push_back(entry.path().filename().string());
        std::sort(class_names_.begin(), class_names_.end());
        if (class_names_.empty())
            throw io::file_error(root,
                                 "holds no class folders (an image folder holds one sub-folder of images per class)");
        for (std::size_t label = 0; label < class_names_.size(); ++label) {
            std::vector<fs::path> found;
            for (const auto& entry : fs::recursive_directory_iterator(root / class_names_[label],
                                                                      fs::directory_options::follow_directory_symlink))
                if (entry.is_regular_file() && is_image_file(entry.path()))
                    found.push_back(entry.path());
            if (found.empty())
                throw io::file_error(root / class_names_[label],
                                     "holds no image files (" + image_folder_extension_list() + ")");
            std::sort(found.begin(), found.end());
            for (auto& path : found) {
                files_.push_back(std::move(path));
                labels_.push_back(int(label));
            }
        }
        const bool cached = files_.size() * sample_bytes <= options_.cache_bytes;
        if (cached)
            cache_.resize(files_.size() * sample_bytes);
        if (!cached && options_.unreadable == unreadable_images::stop)
            return;
        // Decoded now: into the cache, or, to find the unreadable ones, only to see that they decode.
        std::vector<std::string> failures(files_.size());
        decode_each(files_.size(), [&](std::size_t i) {
            try {
                const auto planes = read_planes(i);
                if (cached)
                    std::copy(planes.begin(), planes.end(), cache_.begin() + long(i * sample_bytes));
            } catch (const io::file_error& e) {
                if (options_.unreadable == unreadable_images::stop)
                    throw;
                failures[i] = e.what();
            }
        });
        leave_out(failures);
    }

    /// The files left out as unreadable (unreadable_images::skip), in file order.
    const std::vector<skipped_image>& skipped() const { return skipped_; }

    std::size_t size() const { return files_.size(); }
    std::size_t classes() const { return class_names_.size(); }
    /// The class folders' names, in label order.
    const std::vector<std::string>& class_names() const { return class_names_; }
    const std::filesystem::path& file(std::size_t i) const { return files_.at(i); }
    int label(std::size_t i) const { return labels_.at(i); }

    /// Examples `indices` as they are (evaluation: no random flip or crop).
    void load_batch(std::span<const std::size_t> indices, tensor<Shape>& images, std::vector<int>& labels) const
    {
        load(indices, images, labels, nullptr);
    }

    /// Examples `indices` with the options' random flips and crops, drawn from `key`.
    void load_batch(std::span<const std::size_t> indices, tensor<Shape>& images, std::vector<int>& labels,
                    const augmentation_key& key) const
    {
        load(indices, images, labels, &key);
    }

private:
    static constexpr std::size_t sample_bytes = channels * plane;

    static bool is_image_file(const std::filesystem::path& path)
    {
        std::string extension = path.extension().string();
        std::transform(extension.begin(), extension.end(), extension.begin(),
                       [](unsigned char c) { return char(std::tolower(c)); });
        return std::find(image_folder_extensions.begin(), image_folder_extensions.end(), extension) !=
               image_folder_extensions.end();
    }

    std::vector<std::uint8_t> read_planes(std::size_t i) const
    {
        return image::resized_planes(image::read(files_[i], channels), height, width);
    }

    /// Runs work(i) for i < count on all threads; the first exception any of them throws is
    /// thrown here once all have stopped (an exception must not leave an OpenMP region).
    template <class Work>
    static void decode_each(std::size_t count, Work&& work)
    {
        std::exception_ptr failure;
        std::mutex failure_lock;
        // Decoding and resizing an image costs about 50 operations a pixel.
        vgg::detail::parallel_ranges(count, 50 * sample_bytes, [&](std::size_t, std::size_t, vgg::detail::range mine) {
            for (std::size_t i = mine.begin; i < mine.end; ++i) {
                try {
                    work(i);
                } catch (...) {
                    const std::lock_guard<std::mutex> hold(failure_lock);
                    if (!failure)
                        failure = std::current_exception();
                    return;
                }
            }
        });
        if (failure)
            std::rethrow_exception(failure);
    }

    void load(std::span<const std::size_t> indices, tensor<Shape>& images, std::vector<int>& labels,
              const augmentation_key* key) const
    {
        images.resize(indices.size());
        labels.resize(indices.size());
        for (std::size_t n = 0; n < indices.size(); ++n) {
            if (indices[n] >= files_.size())
                throw std::out_of_range("image_folder: example " + std::to_string(indices[n]) + " of " +
                                        std::to_string(files_.size()));
            labels[n] = labels_[indices[n]];
        }
        decode_each(indices.size(), [&](std::size_t n) {
            std::vector<std::uint8_t> decoded;
            const std::uint8_t* planes = nullptr;
            if (cache_.empty()) {
                decoded = read_planes(indices[n]);
                planes = decoded.data();
            } else {
                planes = cache_.data() + indices[n] * sample_bytes;
            }
            bool flip = false;
            long shift_y = 0, shift_x = 0; // the crop window's offset from the image's own place
            if (key) {
                rng draws(mix64(key->stream, key->first_sample + n));
                flip = options_.random_horizontal_flip && draws.below(2) == 1;
                if (const auto padding = options_.random_crop_padding) {
                    shift_y = long(draws.below(2 * padding + 1)) - long(padding);
                    shift_x = long(draws.below(2 * padding + 1)) - long(padding);
                }
            }
            planes_to_sample<Shape>(planes, options_.mean, options_.std, images.sample(n), flip, shift_y, shift_x);
        });
    }

    /// Removes the files with a failure (non-empty) from the dataset, and its cached planes;
    /// a class left without images is an error.
    void leave_out(const std::vector<std::string>& failures)
    {
        std::size_t kept = 0;
        std::vector<std::size_t> per_class(class_names_.size(), 0);
        for (std::size_t i = 0; i < files_.size(); ++i) {
            if (!failures[i].empty()) {
                skipped_.push_back({files_[i], failures[i]});
                continue;
            }
            if (!cache_.empty() && kept != i)
                std::copy_n(cache_.begin() + long(i * sample_bytes), sample_bytes,
                            cache_.begin() + long(kept * sample_bytes));
            files_[kept] = std::move(files_[i]);
            labels_[kept] = labels_[i];
            ++per_class[std::size_t(labels_[kept])];
            ++kept;
        }
        files_.resize(kept);
        labels_.resize(kept);
        if (!cache_.empty())
            cache_.resize(kept * sample_bytes);
        for (std::size_t label = 0; label < class_names_.size(); ++label)
            if (per_class[label] == 0)
                throw io::file_error(root_ / class_names_[label],
                                     "has no readable image: all its image files were skipped as unreadable");
    }

    image_folder_options options_;
    std::filesystem::path root_;
    std::vector<skipped_image> skipped_;
    std::vector<std::string> class_names_;
    std::vector<std::filesystem::path> files_;
    std::vector<int> labels_;
    std::vector<std::uint8_t> cache_;
};

} // namespace vgg::data
