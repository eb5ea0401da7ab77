#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "vgg/image/bilinear_resizer.hpp"
#include "vgg/image/decode.hpp"

namespace vgg::image {

/// The image's channels as planes, one after the other (as tensors hold them), each resized to
/// height x width as PIL's bilinear resize does: torchvision's Resize((height, width)), 8-bit.
inline std::vector<std::uint8_t> resized_planes(const pixels& image, std::size_t height, std::size_t width)
{
    const bilinear_resizer resizer(image.height, image.width, height, width);
    std::vector<std::uint8_t> planes(image.channels * height * width), plane(image.height * image.width), scratch;
    for (std::size_t c = 0; c < image.channels; ++c) {
        for (std::size_t i = 0; i < plane.size(); ++i)
            plane[i] = image.values[i * image.channels + c];
        resizer.resize(plane.data(), planes.data() + c * height * width, scratch);
    }
    return planes;
}

} // namespace vgg::image
