#pragma once
// Calibration: the range of each activation an int8 layer reads, estimated from the values a
// calibration set produces there in fp32.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "vgg/kernels/int8/layout.hpp"

namespace vgg::int8 {

/// How an activation's range [0, threshold] is chosen from its calibration values.
enum class calibration_method {
    max,        ///< the largest value: nothing clipped, the coarsest steps
    percentile, ///< the value below which `percentile` % of the nonzero values lie
    mse,        ///< the threshold that minimises the expected squared error, clipping plus rounding
};

constexpr std::string_view to_string(calibration_method m)
{
    return m == calibration_method::max ? "max" : m == calibration_method::percentile ? "percentile" : "mse";
}

/// A method by name ("max", "percentile", "mse"); std::invalid_argument names the choices.
inline calibration_method calibration_method_named(std::string_view name)
{
    for (const auto m : {calibration_method::max, calibration_method::percentile, calibration_method::mse})
        if (to_string(m) == name)
            return m;
    throw std::invalid_argument("unknown calibration method \"" + std::string(name) +
                                "\": choose max, percentile or mse");
}

/// Values seen at one activation, in two passes over the calibration set: the first finds the
/// largest (observe_range), the second counts the nonzero values in `bins` equal bins up to it
/// (observe). Zeros (a ReLU's floor) are exact in u8 at any scale and are not counted; NaN and
/// infinite values are left out.
class activation_histogram {
public:
    static constexpr std::size_t bins = 2048;

    void observe_range(const float* values, std::size_t count)
    {
        for (std::size_t i = 0; i < count; ++i)
            if (std::isfinite(values[i]))
                largest_ = std::max(largest_, values[i]);
    }
    void observe(const float* values, std::size_t count)
    {
        if (counts_.empty())
            counts_.assign(bins, 0);
        if (!(largest_ > 0.f))
            return;
        const float per_bin = float(bins) / largest_;
        for (std::size_t i = 0; i < count; ++i)
            if (values[i] > 0.f && values[i] <= largest_)
                ++counts_[std::min(bins - 1, static_cast<std::size_t>(values[i] * per_bin))];
    }

    float largest() const { return largest_; }

    /// The threshold `method` picks (0 when no value above zero was seen).
    float threshold(calibration_method method, double percentile) const
    {
        if (!(largest_ > 0.f) || counts_.empty())
            return 0.f;
        if (method == calibration_method::max)
            return largest_;
        if (method == calibration_method::percentile)
            return percentile_threshold(percentile);
        return mse_threshold();
    }

private:
    double bin_width() const { return double(largest_) / bins; }

    float percentile_threshold(double percentile) const
    {
        if (!(percentile > 0.0 && percentile <= 100.0))
            throw std::invalid_argument("calibration percentile " + std::to_string(percentile) +
                                        " is outside (0, 100]");
        std::uint64_t total = 0;
        for (const auto c : counts_)
            total += c;
        const double wanted = percentile / 100.0 * double(total);
        std::uint64_t below = 0;
        for (std::size_t i = 0; i < bins; ++i) {
            below += counts_[i];
            if (double(below) >= wanted)
                return static_cast<float>((i + 1) * bin_width());
        }
        return largest_;
    }

    /// Each bin's values at its centre: those above the threshold are clipped to it, those below
    /// round to a step of threshold / 255 (error variance step^2 / 12).
    float mse_threshold() const
    {
        double best_error = -1.0, best = largest_;
        for (std::size_t t = bins / 64; t <= bins; ++t) {
            const double threshold = double(t) * bin_width();
            const double step = threshold / 255.0;
            double error = 0.0;
            for (std::size_t i = 0; i < bins; ++i) {
                const double centre = (double(i) + 0.5) * bin_width();
                const double clipped = centre - threshold;
                error += double(counts_[i]) * (clipped > 0.0 ? clipped * clipped : step * step / 12.0);
            }
            if (best_error < 0.0 || error < best_error) {
                best_error = error;
                best = threshold;
            }
        }
        return static_cast<float>(best);
    }

    float largest_ = 0.f;
    std::vector<std::uint64_t> counts_;
};

/// How images like `images` (fp32 values) become u8: their range, widened to hold 0, in 255 steps,
/// 0 on a step (the zero point, which the first convolution's padding holds). NaN values are passed
/// by; an infinite one is refused.
inline kernels::int8::input_quantisation image_quantisation(std::span<const float> images)
{
    float low = 0.f, high = 0.f;
    for (const float v : images) {
        low = std::min(low, v);
        high = std::max(high, v);
    }
    if (!std::isfinite(low) || !std::isfinite(high))
        throw std::invalid_argument("int8 quantisation: a calibration image holds an infinite value");
    if (high == low)
        return {};
    const float scale = (high - low) / float(kernels::int8::activation_levels);
    return {scale, static_cast<int>(std::nearbyint(-low / scale))};
}

} // namespace vgg::int8
