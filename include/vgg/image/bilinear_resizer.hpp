#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace vgg::image {

/// Bilinear resizing of 8-bit grey images exactly as torchvision's transforms.Resize does it on
/// the PIL images Fashion-MNIST yields (PIL's Resample.c): pixel centres at +0.5
/// (align_corners=False), a triangle filter widened when shrinking, 22-bit fixed-point weights,
/// a horizontal pass then a vertical one, each rounded back to 8 bits.
class bilinear_resizer {
public:
    bilinear_resizer(std::size_t in_height, std::size_t in_width, std::size_t out_height, std::size_t out_width)
        : in_height_(in_height), in_width_(in_width), out_height_(out_height), out_width_(out_width),
          horizontal_(taps_for(checked(in_width), checked(out_width))),
          vertical_(taps_for(checked(in_height), checked(out_height)))
    {}

    std::size_t out_height() const { return out_height_; }
    std::size_t out_width() const { return out_width_; }

    /// Resizes one image to 8 bits, as PIL does.
    void resize(const std::uint8_t* in, std::uint8_t* out, std::vector<std::uint8_t>& scratch) const
    {
        if (in_height_ == out_height_ && in_width_ == out_width_) { // PIL returns a copy
            std::copy(in, in + in_height_ * in_width_, out);
            return;
        }
        scratch.resize(in_height_ * out_width_);
        for (std::size_t y = 0; y < in_height_; ++y)
            for (std::size_t x = 0; x < out_width_; ++x)
                scratch[y * out_width_ + x] = horizontal_.apply(x, in + y * in_width_, 1);
        for (std::size_t y = 0; y < out_height_; ++y)
            for (std::size_t x = 0; x < out_width_; ++x)
                out[y * out_width_ + x] = vertical_.apply(y, scratch.data() + x, out_width_);
    }

    /// Resizes one image and scales it to [0, 1] as ToTensor() does.
    void resize_to_unit(const std::uint8_t* in, float* out, std::vector<std::uint8_t>& scratch,
                        std::vector<std::uint8_t>& resized) const
    {
        resized.resize(out_height_ * out_width_);
        resize(in, resized.data(), scratch);
        for (std::size_t i = 0; i < resized.size(); ++i)
            out[i] = static_cast<float>(resized[i]) / 255.f;
    }

private:
    static constexpr int precision_bits = 32 - 8 - 2;

    static std::size_t checked(std::size_t size)
    {
        if (size == 0)
            throw std::invalid_argument("bilinear_resizer: an image side of 0 pixels cannot be resized");
        return size;
    }

    // For each output index: the first input index and the fixed-point weights of its inputs.
    struct taps {
        std::vector<std::size_t> first, count;
        std::vector<std::int32_t> weights;
        std::size_t width = 0;

        std::uint8_t apply(std::size_t o, const std::uint8_t* line, std::size_t stride) const
        {
            std::int64_t sum = std::int64_t(1) << (precision_bits - 1);
            const std::int32_t* w = weights.data() + o * width;
            for (std::size_t k = 0; k < count[o]; ++k)
                sum += std::int64_t(line[(first[o] + k) * stride]) * w[k];
            return static_cast<std::uint8_t>(std::clamp<std::int64_t>(sum >> precision_bits, 0, 255));
        }
    };

    static taps taps_for(std::size_t in_size, std::size_t out_size)
    {
        const double scale = double(in_size) / double(out_size);
        const double filter_scale = std::max(scale, 1.0);
        const double support = 1.0 * filter_scale; // the bilinear filter's support is 1
        taps t;
        t.width = static_cast<std::size_t>(std::ceil(support)) * 2 + 1;
        t.weights.assign(out_size * t.width, 0);
        for (std::size_t o = 0; o < out_size; ++o) {
            const double centre = (double(o) + 0.5) * scale;
            const auto low = std::max<long>(static_cast<long>(centre - support + 0.5), 0);
            const auto high = std::min<long>(static_cast<long>(centre + support + 0.5), static_cast<long>(in_size));
            std::vector<double> w;
            double total = 0;
            for (long i = low; i < high; ++i) {
                const double distance = std::abs((double(i) - centre + 0.5) / filter_scale);
                w.push_back(distance < 1.0 ? 1.0 - distance : 0.0);
                total += w.back();
            }
            t.first.push_back(static_cast<std::size_t>(low));
            t.count.push_back(w.size());
            for (std::size_t k = 0; k < w.size(); ++k) {
                const double normalised = total != 0.0 ? w[k] / total : w[k];
                t.weights[o * t.width + k] =
                    static_cast<std::int32_t>(normalised < 0 ? -0.5 + normalised * (1 << precision_bits)
                                                             : 0.5 + normalised * (1 << precision_bits));
            }
        }
        return t;
    }

    std::size_t in_height_, in_width_, out_height_, out_width_;
    taps horizontal_, vertical_;
};

} // namespace vgg::image
