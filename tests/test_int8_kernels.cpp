// The int8 kernels against exact integer and double-precision references, on every kernel this
// CPU runs (the others skip, naming the missing feature): the int32 sums of convolutions and fully
// connected layers bit for bit, requantisation, the fused pool against the unfused path, and the
// same bytes from every kernel.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <vgg/core/rng.hpp>
#include <vgg/kernels/int8/conv3x3_int8.hpp>
#include <vgg/kernels/int8/image_rows.hpp>
#include <vgg/kernels/int8/linear_int8.hpp>

#include "cpu_skip.hpp"

using namespace vgg;
using namespace vgg::kernels::int8;
using vgg::kernels::int8_kernel;

namespace {

struct int8_conv_case {
    std::size_t in, out, height, width;
    bool extreme = false; ///< every activation 255, every weight +-weight_code_limit
};

/// Random u8 activations (about half zero, as after ReLU) and weights in [-63, 63].
struct int8_problem {
    std::vector<std::uint8_t> x; ///< [batch][in][height][width]
    quantised_weights weights;   ///< [out][in][taps]
    std::vector<float> multiplier, offset;

    int8_problem(std::size_t batch, std::size_t in, std::size_t pixels, std::size_t out, std::size_t taps,
                 std::uint64_t seed)
        : x(batch * in * pixels), weights{std::vector<std::int8_t>(out * in * taps), std::vector<float>(out, 1.f)},
          multiplier(out), offset(out)
    {
        rng random(seed);
        for (auto& v : x)
            v = random.uniform() < 0.5f ? 0 : static_cast<std::uint8_t>(random.uniform() * 256.f);
        for (auto& w : weights.values)
            w = static_cast<std::int8_t>(std::lround(random.uniform() * 126.f) - 63);
        for (std::size_t o = 0; o < out; ++o) {
            multiplier[o] = 1e-3f + random.uniform() * 4e-3f;
            offset[o] = random.uniform() * 40.f - 20.f;
        }
    }

    /// The largest codes: int16 pairs of products at their limit, 2 x 255 x 64 (AVX2), with the
    /// sign of each output channel's weights alternating.
    void make_extreme(std::size_t out)
    {
        std::fill(x.begin(), x.end(), std::uint8_t{255});
        const std::size_t per_channel = weights.values.size() / out;
        for (std::size_t k = 0; k < weights.values.size(); ++k)
            weights.values[k] =
                static_cast<std::int8_t>((k / per_channel) % 2 ? -weight_code_limit : weight_code_limit);
        std::fill(multiplier.begin(), multiplier.end(), 1e-6f);
    }

    requantisation unit() const
    {
        requantisation r{aligned_vector<float>(padded_channels(multiplier.size()), 0.f),
                         aligned_vector<float>(padded_channels(multiplier.size()), 0.f)};
        std::fill(r.multiplier.begin(), r.multiplier.begin() + long(multiplier.size()), 1.f);
        return r;
    }
    requantisation random() const
    {
        requantisation r = unit();
        std::copy(multiplier.begin(), multiplier.end(), r.multiplier.begin());
        std::copy(offset.begin(), offset.end(), r.offset.begin());
        return r;
    }
};

/// The exact sums of a 3x3 convolution, [batch][out][height][width].
std::vector<std::int64_t> reference_conv(const int8_problem& p, std::size_t batch, const int8_conv_case& c)
{
    std::vector<std::int64_t> sums(batch * c.out * c.height * c.width, 0);
    for (std::size_t n = 0; n < batch; ++n)
        for (std::size_t o = 0; o < c.out; ++o)
            for (std::size_t h = 0; h < c.height; ++h)
                for (std::size_t w = 0; w < c.width; ++w) {
                    std::int64_t total = 0;
                    for (std::size_t i = 0; i < c.in; ++i)
                        for (std::size_t t = 0; t < 9; ++t) {
                            const long y = long(h) + long(t / 3) - 1, z = long(w) + long(t % 3) - 1;
                            if (y < 0 || z < 0 || y >= long(c.height) || z >= long(c.width))
                                continue;
                            total +=
                                std::int64_t{
                                    p.x[((n * c.in + i) * c.height + std::size_t(y)) * c.width + std::size_t(z)]} *
                                p.weights.values[(o * c.in + i) * 9 + t];
                        }
                    sums[((n * c.out + o) * c.height + h) * c.width + w] = total;
                }
    return sums;
}

/// The requantised u8 of an exact sum, in double precision.
int reference_requantize(std::int64_t sum, float multiplier, float offset)
{
    const double v = std::clamp(double(sum) * multiplier + offset, 0.0, 255.0);
    return int(std::nearbyint(v));
}

/// Whether float rounding may land on the other side of a tie than double rounding does.
bool near_tie(std::int64_t sum, float multiplier, float offset)
{
    const double v = double(sum) * multiplier + offset;
    return std::abs(v - std::floor(v) - 0.5) < 1e-4;
}

std::vector<std::uint8_t> to_planes(const int8_problem& p, std::size_t batch, const int8_conv_case& c,
                                    const planes& layout)
{
    std::vector<std::uint8_t> stored(batch * layout.image_size(), 0);
    for (std::size_t n = 0; n < batch; ++n)
        for (std::size_t i = 0; i < c.in; ++i)
            for (std::size_t h = 0; h < c.height; ++h)
                for (std::size_t w = 0; w < c.width; ++w)
                    stored[n * layout.image_size() + layout.at(h, w) + i] =
                        p.x[((n * c.in + i) * c.height + h) * c.width + w];
    return stored;
}

packed_weights pack_conv(const int8_problem& p, const int8_conv_case& c)
{
    return pack_weights(p.weights, c.out, c.in, 9, padded_channels(c.in), [&](std::size_t s) { return s; });
}

void check_conv_kernel(int8_kernel kernel)
{
    const std::vector<int8_conv_case> cases{{1, 16, 5, 7},  {3, 10, 6, 6},   {16, 32, 8, 10}, {20, 24, 6, 9},
                                            {64, 48, 4, 4}, {48, 80, 2, 14}, {128, 16, 3, 2}, {32, 32, 4, 6, true}};
    for (const auto& c : cases) {
        CAPTURE(c.in);
        CAPTURE(c.out);
        CAPTURE(c.height);
        CAPTURE(c.width);
        CAPTURE(c.extreme);
        const std::size_t batch = 2;
        int8_problem p(batch, c.in, c.height * c.width, c.out, 9, c.in * 1000 + c.out);
        if (c.extreme)
            p.make_extreme(c.out);
        const planes in{c.height, c.width, padded_channels(c.in), 1};
        const planes out{c.height, c.width, padded_channels(c.out), 1};
        const auto x = to_planes(p, batch, c, in);
        const auto w = pack_conv(p, c);
        const auto sums = reference_conv(p, batch, c);

        std::vector<float> exact(batch * out.image_size(), -1.f);
        conv3x3_int8_forward(kernel, batch, in, x.data(), w, p.unit(), {.layout = out, .f32 = exact.data()});
        std::vector<std::uint8_t> requantised(batch * out.image_size(), 7);
        conv3x3_int8_forward(kernel, batch, in, x.data(), w, p.random(), {.layout = out, .u8 = requantised.data()});
        std::size_t wrong_sums = 0, wrong_bytes = 0, ties = 0;
        for (std::size_t n = 0; n < batch; ++n)
            for (std::size_t o = 0; o < c.out; ++o)
                for (std::size_t h = 0; h < c.height; ++h)
                    for (std::size_t z = 0; z < c.width; ++z) {
                        const std::int64_t sum = sums[((n * c.out + o) * c.height + h) * c.width + z];
                        const std::size_t at = n * out.image_size() + out.at(h, z) + o;
                        wrong_sums += exact[at] != float(sum);
                        const int expected = reference_requantize(sum, p.multiplier[o], p.offset[o]);
                        if (requantised[at] != expected)
                            (near_tie(sum, p.multiplier[o], p.offset[o]) && std::abs(requantised[at] - expected) == 1
                                 ? ties
                                 : wrong_bytes)++;
                    }
        CHECK(wrong_sums == 0);
        CHECK(wrong_bytes == 0);
        CHECK(ties <= 2);
        // The border stays zero, and padding channels hold zeros.
        CHECK(requantised[out.at(0, 0) - out.channels] == 7);
        for (std::size_t o = c.out; o < out.channels; ++o)
            CHECK(requantised[out.at(0, 0) + o] == 0);

        if (c.height % 2 == 0 && c.width % 2 == 0) {
            const planes pooled_layout{c.height / 2, c.width / 2, out.channels, 0};
            std::vector<std::uint8_t> pooled(batch * pooled_layout.image_size());
            conv3x3_int8_forward(kernel, batch, in, x.data(), w, p.random(),
                                 {.layout = pooled_layout, .u8 = pooled.data(), .pool = true});
            std::size_t differ = 0;
            for (std::size_t n = 0; n < batch; ++n)
                for (std::size_t h = 0; h < c.height / 2; ++h)
                    for (std::size_t z = 0; z < c.width / 2; ++z)
                        for (std::size_t o = 0; o < out.channels; ++o) {
                            const auto at = [&](std::size_t dy, std::size_t dz) {
                                return requantised[n * out.image_size() + out.at(2 * h + dy, 2 * z + dz) + o];
                            };
                            const auto largest = std::max({at(0, 0), at(0, 1), at(1, 0), at(1, 1)});
                            differ += pooled[n * pooled_layout.image_size() + pooled_layout.at(h, z) + o] != largest;
                        }
            CHECK(differ == 0);
        }
    }
}

void check_linear_kernel(int8_kernel kernel)
{
    for (const auto& sizes : {std::array<std::size_t, 3>{1, 37, 10}, {3, 64, 33}, {7, 300, 48}, {9, 16, 100}}) {
        const std::size_t batch = sizes[0], in = sizes[1], out = sizes[2];
        CAPTURE(batch);
        CAPTURE(in);
        CAPTURE(out);
        const int8_problem p(batch, in, 1, out, 1, batch * 100 + in + out);
        const std::size_t stride = padded_channels(in);
        std::vector<std::uint8_t> x(batch * stride, 0);
        for (std::size_t n = 0; n < batch; ++n)
            std::copy_n(p.x.begin() + long(n * in), in, x.begin() + long(n * stride));
        const auto w = pack_weights(p.weights, out, in, 1, in, [](std::size_t s) { return s; });
        std::vector<float> exact(batch * out, -1.f);
        linear_int8_forward(kernel, batch, x.data(), stride, w, p.unit(), out, nullptr, exact.data());
        std::vector<std::uint8_t> requantised(batch * padded_channels(out), 7);
        linear_int8_forward(kernel, batch, x.data(), stride, w, p.random(), out, requantised.data(), nullptr);
        std::size_t wrong_sums = 0, wrong_bytes = 0;
        for (std::size_t n = 0; n < batch; ++n)
            for (std::size_t o = 0; o < out; ++o) {
                std::int64_t sum = 0;
                for (std::size_t k = 0; k < in; ++k)
                    sum += std::int64_t{p.x[n * in + k]} * p.weights.values[o * in + k];
                wrong_sums += exact[n * out + o] != float(sum);
                const int got = requantised[n * padded_channels(out) + o];
                const int expected = reference_requantize(sum, p.multiplier[o], p.offset[o]);
                wrong_bytes +=
                    got != expected && !(near_tie(sum, p.multiplier[o], p.offset[o]) && std::abs(got - expected) == 1);
            }
        CHECK(wrong_sums == 0);
        CHECK(wrong_bytes == 0);
    }
}

/// The first convolution: an fp32 image (negative values too) quantised with a zero point and
/// convolved by row taps (the input exactly image_slack bytes longer than its images), against the exact sums of (q -
/// zero_point) x w over the taps inside the image (the padding is a zero).
void check_image_conv_kernel(int8_kernel kernel)
{
    for (const auto& c : {int8_conv_case{1, 16, 5, 7}, {3, 64, 6, 6}, {3, 20, 1, 9}, {2, 16, 4, 5}, {4, 32, 3, 8}}) {
        CAPTURE(c.in);
        CAPTURE(c.out);
        const std::size_t batch = 2, pixels = c.height * c.width;
        const int8_problem p(batch, c.in, pixels, c.out, 9, c.in * 77 + c.out);
        const input_quantisation q{0.02f, 100};
        rng random(c.out);
        std::vector<float> image(batch * c.in * pixels);
        for (auto& v : image)
            v = random.uniform() * 5.f - 2.f; // [-2, 3): codes 0 to 250
        const planes in = image_planes(c.in, c.height, c.width);
        std::vector<std::uint8_t> x(batch * in.image_size() + image_slack, 7);
        for (std::size_t n = 0; n < batch; ++n)
            CHECK(quantise_image(image.data() + n * c.in * pixels, q, in, x.data() + n * in.image_size()));
        const auto w = pack_row_tap_weights(p.weights, c.out, c.in);
        requantisation r = p.unit();
        for (std::size_t o = 0; o < c.out; ++o) {
            std::int64_t weights = 0;
            for (std::size_t k = 0; k < 9 * c.in; ++k)
                weights += p.weights.values[o * 9 * c.in + k];
            r.offset[o] = -float(q.zero_point * weights); // the padding's codes, zero_point, are zeros
        }
        const planes out{c.height, c.width, padded_channels(c.out), 1};
        std::vector<float> sums(batch * out.image_size(), -1.f);
        conv3x3_int8_forward(kernel, batch, in, x.data(), w, r, {.layout = out, .f32 = sums.data()});
        std::size_t wrong = 0;
        for (std::size_t n = 0; n < batch; ++n)
            for (std::size_t o = 0; o < c.out; ++o)
                for (std::size_t h = 0; h < c.height; ++h)
                    for (std::size_t z = 0; z < c.width; ++z) {
                        std::int64_t expected = 0;
                        for (std::size_t i = 0; i < c.in; ++i)
                            for (std::size_t t = 0; t < 9; ++t) {
                                const long y = long(h) + long(t / 3) - 1, v = long(z) + long(t % 3) - 1;
                                if (y < 0 || v < 0 || y >= long(c.height) || v >= long(c.width))
                                    continue;
                                const float value =
                                    image[((n * c.in + i) * c.height + std::size_t(y)) * c.width + std::size_t(v)];
                                const long code = std::lround(std::clamp(
                                    std::nearbyint(value * (1.f / q.scale) + float(q.zero_point)), 0.f, 255.f));
                                expected += (code - q.zero_point) * p.weights.values[(o * c.in + i) * 9 + t];
                            }
                        wrong += sums[n * out.image_size() + out.at(h, z) + o] != float(expected);
                    }
        CHECK(wrong == 0);
    }
    const planes one = image_planes(1, 1, 1);
    std::vector<std::uint8_t> pixel(one.image_size());
    const float not_a_number = std::nanf("");
    CHECK(!quantise_image(&not_a_number, {}, one, pixel.data()));
}

} // namespace

TEST_CASE("int8 portable kernel: exact int32 sums, requantisation as in double precision, the fused pool")
{
    check_conv_kernel(int8_kernel::portable);
    check_image_conv_kernel(int8_kernel::portable);
    check_linear_kernel(int8_kernel::portable);
}

TEST_CASE("int8 AVX2 kernel: exact int32 sums, requantisation as in double precision, the fused pool")
{
    testing::skip_unless_runs(int8_kernel::avx2);
    check_conv_kernel(int8_kernel::avx2);
    check_image_conv_kernel(int8_kernel::avx2);
    check_linear_kernel(int8_kernel::avx2);
}

TEST_CASE("int8 AVX512_VNNI kernel: exact int32 sums, requantisation as in double precision, the fused pool")
{
    testing::skip_unless_runs(int8_kernel::avx512_vnni);
    check_conv_kernel(int8_kernel::avx512_vnni);
    check_image_conv_kernel(int8_kernel::avx512_vnni);
    check_linear_kernel(int8_kernel::avx512_vnni);
}

TEST_CASE("conv3x3_int8_forward refuses an input its weights were not packed for, naming both")
{
    const int8_problem p(1, 3, 16, 16, 9, 5);
    const auto same = [](std::size_t s) { return s; };
    const auto nine_taps = pack_weights(p.weights, 16, 3, 9, 16, same);
    const auto rows = pack_row_tap_weights(p.weights, 16, 3);
    const planes image = image_planes(3, 4, 4), stored{4, 4, 16, 1}, no_border{4, 4, 16, 0}, out{4, 4, 16, 1};
    std::vector<std::uint8_t> x(stored.image_size() + image_slack), y(out.image_size());
    const conv_int8_output to{.layout = out, .u8 = y.data()};
    const auto refusal = [&](const planes& in, const packed_weights& w) {
        try {
            conv3x3_int8_forward(int8_kernel::portable, 1, in, x.data(), w, p.unit(), to);
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    CHECK(refusal(no_border, nine_taps) ==
          "conv3x3_int8_forward: the input needs a border of 1 pixel (padding 1), it has 0");
    CHECK(refusal(image, nine_taps) == "conv3x3_int8_forward: weights packed for 16 input channels, the input has 3");
    CHECK(refusal(stored, rows) ==
          "conv3x3_int8_forward: row-tap weights packed for 3 groups per row, an input of 16 channels needs 12");
    CHECK(refusal(image, rows) == "no error");
    CHECK(refusal(stored, nine_taps) == "no error");
}
