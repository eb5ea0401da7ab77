// Layers in bf16 precision: each convolution and fully connected layer computes what its fp32
// self computes on bf16-rounded operands (up to the order of fp32 sums), and a whole network's
// gradients stay within bf16's tolerance of fp32's. Skipped on CPUs without AMX or AVX512_BF16.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include <vgg/kernels/conv_reference.hpp>
#include <vgg/vgg.hpp>

#include "cpu_skip.hpp"

using namespace vgg;

namespace {

void fill(std::span<float> values, rng& random)
{
    for (auto& v : values)
        v = random.uniform(-1.f, 1.f);
}

void round_all(std::span<float> values)
{
    for (auto& v : values)
        v = kernels::round_to_bf16(v);
}

/// max |a - b| / max |b|.
double relative_difference(std::span<const float> a, std::span<const float> b)
{
    double worst = 0, scale = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        worst = std::max(worst, std::abs(double(a[i]) - b[i]));
        scale = std::max(scale, std::abs(double(b[i])));
    }
    return worst / scale;
}

/// ||a - b|| / ||b||: a max-pool or ReLU that flips under rounding sends one gradient elsewhere,
/// which a norm weighs by its size and an element-wise measure would take as the whole error.
double relative_norm_difference(std::span<const float> a, std::span<const float> b)
{
    double difference = 0, norm = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        difference += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
        norm += double(b[i]) * b[i];
    }
    return std::sqrt(difference / norm);
}

std::vector<float> weight_gradient(auto& layer)
{
    std::vector<float> grads;
    layer.visit_parameters("", [&](const parameter_view& p) {
        if (p.name == "weight")
            grads.assign(p.grad.begin(), p.grad.end());
    });
    return grads;
}

/// Runs `Layer` in bf16 and, as the reference, in fp32 on the bf16-rounded input, weight and
/// output gradient (biases and their gradients stay fp32 in both). With `runs_fp32` (a
/// convolution with_fastest_products runs by fp32 Winograd here), the reference is its fp32 self
/// on the unrounded operands, bit for bit.
template <class Layer>
void check_layer_rounds_its_operands(std::size_t batch, bool runs_fp32 = false)
{
    rng random(19);
    Layer bf16_layer, reference;
    bf16_layer.initialize(weight_init::xavier_uniform, random);
    reference.initialize(weight_init::xavier_uniform, random);
    bf16_layer.visit_parameters("", [&](const parameter_view& p) { fill(p.value, random); });
    std::vector<std::vector<float>> values;
    bf16_layer.visit_parameters("",
                                [&](const parameter_view& p) { values.emplace_back(p.value.begin(), p.value.end()); });
    std::size_t at = 0;
    reference.visit_parameters("", [&](const parameter_view& p) {
        std::copy(values[at].begin(), values[at].end(), p.value.begin());
        if (p.name == "weight")
            round_all(p.value);
        ++at;
    });

    tensor<typename Layer::input_shape> x(batch), rounded_x(batch), dx, reference_dx;
    tensor<typename Layer::output_shape> y, reference_y, dy(batch), rounded_dy(batch);
    fill(x.values(), random);
    fill(dy.values(), random);
    std::copy(x.values().begin(), x.values().end(), rounded_x.values().begin());
    std::copy(dy.values().begin(), dy.values().end(), rounded_dy.values().begin());
    round_all(rounded_x.values());
    round_all(rounded_dy.values());

    bf16_layer.forward(x, y, {mode::train, 0, 0, precision::bf16});
    bf16_layer.backward(x, y, dy, &dx);
    Layer unrounded;
    at = 0;
    unrounded.visit_parameters(
        "", [&](const parameter_view& p) { std::copy(values[at].begin(), values[at].end(), p.value.begin()), ++at; });
    if (runs_fp32) {
        unrounded.forward(x, reference_y, {});
        unrounded.backward(x, reference_y, dy, &reference_dx);
        CHECK(std::ranges::equal(y.values(), reference_y.values()));
        CHECK(std::ranges::equal(dx.values(), reference_dx.values()));
        CHECK(weight_gradient(bf16_layer) == weight_gradient(unrounded));
        return;
    }
    reference.forward(rounded_x, reference_y, {});
    reference.backward(rounded_x, reference_y, rounded_dy, &reference_dx);
    CHECK(relative_difference(y.values(), reference_y.values()) < 2e-5);
    CHECK(relative_difference(dx.values(), reference_dx.values()) < 2e-5);
    CHECK(relative_difference(weight_gradient(bf16_layer), weight_gradient(reference)) < 2e-5);

    // The bf16 path really rounds: fp32 on the unrounded operands differs by bf16's step.
    unrounded.forward(x, reference_y, {});
    CHECK(relative_difference(y.values(), reference_y.values()) > 1e-4);
}

} // namespace

TEST_CASE("Conv3x3 in bf16 is the fp32 convolution of bf16-rounded operands, forward and backward")
{
    testing::skip_unless_bf16();
    // Where Winograd can run a convolution, fp32 Winograd beats bf16 products on AVX512_BF16 alone
    // (with_fastest_products); AMX keeps bf16, and so do convolutions Winograd cannot run.
    const bool winograd_beats_bf16 = kernels::best_bf16_kernel() == kernels::bf16_kernel::avx512_bf16;
    const auto runs_as = [](kernels::conv3x3_dims d) { return kernels::with_fastest_products(d).compute; };
    CHECK(runs_as({16, 32, 8, 8, precision::bf16}) == (winograd_beats_bf16 ? precision::fp32 : precision::bf16));
    CHECK(runs_as({8, 32, 8, 8, precision::bf16}) == precision::bf16);   // too few channels for Winograd
    CHECK(runs_as({32, 48, 9, 17, precision::bf16}) == precision::bf16); // odd sides
    CHECK(runs_as({16, 32, 8, 8, precision::fp32}) == precision::fp32);
    SUBCASE("3 -> 20 channels, 10 x 12")
    {
        check_layer_rounds_its_operands<Conv3x3<3, 20>::layer<shape<3, 10, 12>>>(3);
    }
    SUBCASE("16 -> 32 channels, 8 x 8 (the reference by Winograd in fp32)")
    {
        check_layer_rounds_its_operands<Conv3x3<16, 32>::layer<shape<16, 8, 8>>>(2, winograd_beats_bf16);
    }
    SUBCASE("32 -> 48 channels, 9 x 17 (on AMX from a channels-last copy)")
    {
        check_layer_rounds_its_operands<Conv3x3<32, 48>::layer<shape<32, 9, 17>>>(3);
    }
    SUBCASE("2 -> 5 channels, 7 x 5, one image")
    {
        check_layer_rounds_its_operands<Conv3x3<2, 5>::layer<shape<2, 7, 5>>>(1);
    }
}

TEST_CASE("the AMX convolution from a channels-last copy is the definition on bf16-rounded operands, at edge shapes")
{
    testing::skip_unless_runs(kernels::bf16_kernel::amx);
    struct convolution {
        std::size_t in, out, height, width, first_group, last_group;
    };
    // Rows past a 16-pixel block (7, 17, 33), one row, an odd row count, 16 channels (a run of 48
    // values read as 64), 48 channels (a run of 144 read as 160), an odd group count, a part of the
    // groups; one and three input channels (a grey or RGB image), staged value by value.
    for (const auto& c :
         {convolution{16, 16, 1, 1, 0, 1}, convolution{16, 32, 5, 7, 0, 2}, convolution{32, 48, 9, 17, 0, 3},
          convolution{48, 16, 4, 33, 0, 1}, convolution{64, 32, 3, 16, 0, 2}, convolution{16, 64, 14, 14, 1, 4},
          convolution{1, 16, 6, 20, 0, 1}, convolution{3, 32, 8, 9, 0, 2}}) {
        CAPTURE(c.in);
        CAPTURE(c.out);
        CAPTURE(c.height);
        CAPTURE(c.width);
        rng random(31);
        const kernels::amx_conv3x3_layout layout{c.in, c.out, c.height, c.width};
        std::vector<float> x(c.in * c.height * c.width), weight(c.out * c.in * 9), bias(c.out);
        fill(x, random);
        fill(weight, random);
        fill(bias, random);
        aligned_vector<std::uint16_t> staged(layout.staged_size()), packed(layout.packed_weights_size());
        kernels::stage_channels_last(layout, x.data(), staged.data());
        kernels::pack_amx_conv3x3_weights(layout, weight.data(), packed.data());
        const float untouched = 1234.f;
        std::vector<float> y(c.out * c.height * c.width, untouched), expected(y.size());
        const vgg::detail::range groups{c.first_group, c.last_group};
        kernels::amx_conv3x3_image(layout, staged.data(), packed.data(), bias.data(), groups, {.planes = y.data()});
        round_all(x);
        round_all(weight);
        kernels::conv3x3_reference(1, c.in, c.out, c.height, c.width, x.data(), weight.data(), bias.data(),
                                   expected.data());
        const std::size_t plane = c.height * c.width, first = c.first_group * 16 * plane,
                          last = c.last_group * 16 * plane;
        const auto part = [&](std::vector<float>& v) { return std::span(v).subspan(first, last - first); };
        CHECK(relative_difference(part(y), part(expected)) < 2e-6);
        CHECK(std::all_of(y.begin(), y.begin() + first, [&](float v) { return v == untouched; }));
        CHECK(std::all_of(y.begin() + last, y.end(), [&](float v) { return v == untouched; }));

        // Through ReLU, and pooled with its arg-max as maxpool2x2_planes and relu_inplace give them.
        kernels::amx_conv3x3_image(layout, staged.data(), packed.data(), bias.data(), groups,
                                   {.planes = y.data(), .relu = true});
        kernels::relu_inplace(expected.data(), expected.size());
        CHECK(relative_difference(part(y), part(expected)) < 2e-6);
        if (c.height % 2 != 0 || c.width % 2 != 0)
            continue;
        kernels::conv3x3_reference(1, c.in, c.out, c.height, c.width, x.data(), weight.data(), bias.data(),
                                   expected.data());
        const std::size_t pooled_size = y.size() / 4;
        std::vector<float> pooled(pooled_size, untouched), expected_pooled(pooled_size);
        std::vector<std::uint8_t> argmax(pooled_size, 9), expected_argmax(pooled_size, 9);
        kernels::amx_conv3x3_image(layout, staged.data(), packed.data(), bias.data(), groups,
                                   {.pooled = pooled.data(), .argmax = argmax.data()});
        kernels::maxpool2x2_planes(c.first_group * 16, c.last_group * 16, c.height, c.width, expected.data(),
                                   expected_pooled.data(), expected_argmax.data());
        kernels::relu_inplace(expected_pooled.data(), pooled_size);
        const auto quarter = [&](auto& v) { return std::span(v).subspan(first / 4, (last - first) / 4); };
        CHECK(relative_difference(quarter(pooled), quarter(expected_pooled)) < 2e-6);
        CHECK(std::ranges::equal(quarter(argmax), quarter(expected_argmax)));
        CHECK(std::all_of(pooled.begin(), pooled.begin() + first / 4, [&](float v) { return v == untouched; }));
        CHECK(std::all_of(argmax.begin() + last / 4, argmax.end(), [](std::uint8_t a) { return a == 9; }));
    }
}

TEST_CASE("the AMX weight gradient from bf16 copies of image and gradient is the definition on bf16-rounded operands, "
          "and the same pass copies g for the input gradient and sums it for the bias")
{
    testing::skip_unless_runs(kernels::bf16_kernel::amx);
    struct convolution {
        std::size_t in, out, height, width;
    };
    // Rows shorter than, equal to and past a 32-pixel block, one row, odd and even group counts.
    for (const auto& c : {convolution{16, 16, 1, 1}, convolution{16, 32, 5, 7}, convolution{32, 48, 3, 32},
                          convolution{48, 16, 4, 33}, convolution{64, 32, 6, 14}}) {
        CAPTURE(c.in);
        CAPTURE(c.out);
        CAPTURE(c.height);
        CAPTURE(c.width);
        rng random(37);
        const kernels::amx_weight_gradient_layout layout{c.in, c.out, c.height, c.width};
        const std::size_t plane = c.height * c.width;
        std::vector<float> x(c.in * plane), g(c.out * plane);
        aligned_vector<std::uint16_t> image(layout.image_size()), pairs(layout.gradient_size());
        aligned_vector<float> sums(layout.sums_size(), 0.f);
        // The input gradient's convolution reads g as its image: the same pass writes that copy.
        const kernels::amx_conv3x3_layout adjoint{c.out, c.in, c.height, c.width};
        aligned_vector<std::uint16_t> channels_last(adjoint.staged_size()),
            expected_channels_last(adjoint.staged_size());
        std::vector<float> bias_gradient(c.out, 0.25f), expected_bias_gradient(c.out, 0.25f);
        // Two images summed, as a thread sums its share of a batch.
        std::vector<float> dweight(c.out * c.in * 9, 0.5f), expected(dweight.size(), 0.5f);
        for (int image_number = 0; image_number < 2; ++image_number) {
            fill(x, random);
            fill(g, random);
            kernels::stage_image_planes(layout, x.data(), image.data());
            kernels::stage_gradient(layout, g.data(), pairs.data(), channels_last.data(), bias_gradient.data());
            kernels::stage_channels_last(adjoint, g.data(), expected_channels_last.data());
            CHECK(channels_last == expected_channels_last);
            for (std::size_t o = 0; o < c.out; ++o)
                for (std::size_t p = 0; p < plane; ++p)
                    expected_bias_gradient[o] += g[o * plane + p];
            kernels::amx_accumulate_weight_gradient(layout, image.data(), pairs.data(), sums.data());
            round_all(x);
            round_all(g);
            for (std::size_t o = 0; o < c.out; ++o)
                for (std::size_t ch = 0; ch < c.in; ++ch)
                    for (std::size_t tap = 0; tap < 9; ++tap) {
                        double sum = 0;
                        for (std::size_t y = 0; y < c.height; ++y)
                            for (std::size_t xx = 0; xx < c.width; ++xx) {
                                const std::size_t sy = y + tap / 3, sx = xx + tap % 3; // one past the source pixel
                                if (sy >= 1 && sy <= c.height && sx >= 1 && sx <= c.width)
                                    sum += double(g[o * plane + y * c.width + xx]) *
                                           x[ch * plane + (sy - 1) * c.width + sx - 1];
                            }
                        expected[(o * c.in + ch) * 9 + tap] += float(sum);
                    }
        }
        kernels::add_weight_gradient_sums(layout, sums.data(), dweight.data());
        CHECK(relative_difference(dweight, expected) < 2e-6);
        CHECK(relative_difference(bias_gradient, expected_bias_gradient) < 1e-5);
    }
}

TEST_CASE("Linear in bf16 is the fp32 product of bf16-rounded operands, at small and large batches")
{
    testing::skip_unless_bf16();
    check_layer_rounds_its_operands<Linear<40, 12>::layer<shape<40>>>(3);
    check_layer_rounds_its_operands<Linear<70, 33>::layer<shape<70>>>(20);
}

TEST_CASE("a VGG's output and every gradient in bf16 stay within bf16's tolerance of fp32")
{
    testing::skip_unless_bf16();
    using net_t = VGG<shape<1, 32, 32>, small_conv_arch<vgg11_arch, 8>, 10>;
    auto fp32 = std::make_unique<net_t>(), bf16 = std::make_unique<net_t>();
    rng random(23);
    fp32->initialize(weight_init::xavier_uniform, random);
    std::vector<float> values;
    fp32->visit_parameters(
        [&](const parameter_view& p) { values.insert(values.end(), p.value.begin(), p.value.end()); });
    std::size_t at = 0;
    bf16->visit_parameters([&](const parameter_view& p) {
        std::copy(values.begin() + at, values.begin() + at + p.value.size(), p.value.begin());
        at += p.value.size();
    });
    tensor<shape<1, 32, 32>> x(4);
    for (auto& v : x.values())
        v = random.uniform(0.f, 1.f);
    const std::vector<int> labels{0, 3, 7, 9};
    tensor<shape<10>> grad;
    std::vector<float> logits[2], gradients[2];
    int which = 0;
    for (auto* net : {fp32.get(), bf16.get()}) {
        const auto p = which == 0 ? precision::fp32 : precision::bf16;
        const auto& y = net->forward(x, {mode::train, 5, 0, p});
        logits[which].assign(y.values().begin(), y.values().end());
        softmax_cross_entropy(y, labels, grad);
        net->backward(grad);
        net->visit_parameters([&](const parameter_view& v) {
            gradients[which].insert(gradients[which].end(), v.grad.begin(), v.grad.end());
        });
        ++which;
    }
    const double logit_error = relative_norm_difference(logits[1], logits[0]);
    const double gradient_error = relative_norm_difference(gradients[1], gradients[0]);
    MESSAGE("bf16 against fp32: logits ", logit_error, ", gradients ", gradient_error);
    // A ReLU whose input lies within rounding of 0 flips, and its gradient goes wholly one way or
    // the other: with a fraction f of them flipped the norm error is about sqrt(f), ~0.05-0.14 per
    // layer here. A wrong kernel or a gradient lost on the way gives errors near 1.
    CHECK(logit_error < 3e-2);
    CHECK(gradient_error < 0.2);
    CHECK(logit_error > 1e-5); // the bf16 path ran
}
