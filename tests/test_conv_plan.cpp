// The convolution plan names the back end of every VGG-16 layer at 224x224, forward and backward,
// at batch 1 and 8 on 2 threads: fp32 on any CPU, bf16 on each kind of bf16 CPU (AMX; AVX512_BF16
// without AMX, where Winograd's fp32 beats bf16 products), skipped with the missing feature
// elsewhere. A change of these tables is a change of what every user's network runs.
#include <doctest/doctest.h>

#include <cstddef>
#include <string>
#include <vector>

#include "cpu_skip.hpp"
#include "gradient_check.hpp"
#include <vgg/kernels/conv3x3.hpp>

using namespace vgg;
using kernels::conv3x3_dims;

namespace {

/// The plans of one layer: the forward pass at batch 1 and 8, the gradients (weight / input).
struct layer_plans {
    std::size_t in, out, side;
    std::string batch1, batch8, weight_gradient, input_gradient;
};

/// VGG-16's 13 convolutions at 224 (repeated shapes once), the first without an input gradient.
const std::vector<conv3x3_dims>& vgg16_layers()
{
    static const std::vector<conv3x3_dims> layers{{3, 64, 224, 224},    {64, 64, 224, 224}, {64, 128, 112, 112},
                                                  {128, 128, 112, 112}, {128, 256, 56, 56}, {256, 256, 56, 56},
                                                  {256, 512, 28, 28},   {512, 512, 28, 28}, {512, 512, 14, 14}};
    return layers;
}

std::string forward_of(const conv3x3_dims& d, std::size_t batch)
{
    const auto plan = kernels::plan_conv3x3_forward(d, batch);
    return std::string(to_string(plan.algorithm)) + " by " + std::string(to_string(plan.split));
}

/// Checks every layer's plans in `precision` (as a layer asks: with_fastest_products) against the table.
void check_plans(precision p, const std::vector<layer_plans>& expected)
{
    testing::scoped_threads threads(2);
    REQUIRE(expected.size() == vgg16_layers().size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        conv3x3_dims requested = vgg16_layers()[i];
        requested.compute = p;
        const conv3x3_dims d = kernels::with_fastest_products(requested);
        const bool first = i == 0;
        const auto backward = kernels::plan_conv3x3_backward(d, 8, true, !first, false);
        const layer_plans& e = expected[i];
        INFO(to_string(p) << " Conv3x3<" << d.in_channels << ", " << d.out_channels << "> at " << d.height);
        CHECK(e.in == d.in_channels);
        CHECK(e.side == d.height);
        CHECK(forward_of(d, 1) == e.batch1);
        CHECK(forward_of(d, 8) == e.batch8);
        CHECK(std::string(to_string(backward.weight_gradient)) == e.weight_gradient);
        CHECK(std::string(to_string(backward.input_gradient)) == e.input_gradient);
    }
}

} // namespace

TEST_CASE("the convolution plan of every VGG-16 layer in fp32: Winograd wherever it pays, on any CPU")
{
    check_plans(precision::fp32,
                {{3, 64, 224, "im2col+gemm by channel groups", "im2col+gemm by images", "im2col+gemm", "none"},
                 {64, 64, 224, "winograd F(4x4) by tile rows", "winograd F(4x4) by tile rows", "winograd F(4x4)",
                  "winograd F(4x4)"},
                 {64, 128, 112, "winograd F(4x4) by tile rows", "winograd F(4x4) by tile rows", "winograd F(4x4)",
                  "winograd F(4x4)"},
                 {128, 128, 112, "winograd F(4x4) by tile rows", "winograd F(4x4) by tile rows", "winograd F(4x4)",
                  "winograd F(4x4)"},
                 {128, 256, 56, "winograd F(4x4) by target panels", "winograd F(4x4) by tile rows", "winograd F(4x4)",
                  "winograd F(4x4)"},
                 {256, 256, 56, "winograd F(4x4) by target panels", "winograd F(4x4) by tile rows", "winograd F(4x4)",
                  "winograd F(4x4)"},
                 {256, 512, 28, "winograd F(2x2) by target panels", "winograd F(4x4) by tile rows", "winograd F(4x4)",
                  "winograd F(4x4)"},
                 {512, 512, 28, "winograd F(2x2) by target panels", "winograd F(4x4) by tile rows", "winograd F(4x4)",
                  "winograd F(4x4)"},
                 {512, 512, 14, "winograd F(2x2) by target panels", "winograd F(2x2) by tile rows", "winograd F(2x2)",
                  "winograd F(2x2)"}});
}

TEST_CASE("the convolution plan of every VGG-16 layer in bf16: AMX tiles where the CPU has AMX")
{
    testing::skip_unless_runs(kernels::bf16_kernel::amx);
    std::vector<layer_plans> expected{{3, 64, 224, "amx by channel groups", "amx by images", "bf16 gemm", "none"}};
    for (const conv3x3_dims& d : std::vector<conv3x3_dims>(vgg16_layers().begin() + 1, vgg16_layers().end()))
        expected.push_back(
            {d.in_channels, d.out_channels, d.height, "amx by channel groups", "amx by images", "amx", "amx"});
    check_plans(precision::bf16, expected);
}

TEST_CASE("the convolution plan of every VGG-16 layer in bf16 without AMX: fp32 Winograd where it applies, else bf16 "
          "products")
{
    testing::skip_unless_bf16();
    if (kernels::bf16_kernel_runs(kernels::bf16_kernel::amx))
        testing::skip_because("this CPU has AMX, whose plans the AMX test checks");
    std::vector<layer_plans> expected{
        {3, 64, 224, "bf16 gemm by channel groups", "bf16 gemm by images", "bf16 gemm", "none"}};
    // The others run as in fp32 (with_fastest_products).
    const std::vector<std::string> forward1{"winograd F(4x4) by tile rows",     "winograd F(4x4) by tile rows",
                                            "winograd F(4x4) by tile rows",     "winograd F(4x4) by target panels",
                                            "winograd F(4x4) by target panels", "winograd F(2x2) by target panels",
                                            "winograd F(2x2) by target panels", "winograd F(2x2) by target panels"};
    for (std::size_t i = 1; i < vgg16_layers().size(); ++i) {
        const conv3x3_dims& d = vgg16_layers()[i];
        const std::string tile = d.height == 14 ? "winograd F(2x2)" : "winograd F(4x4)";
        expected.push_back(
            {d.in_channels, d.out_channels, d.height, forward1[i - 1], tile + " by tile rows", tile, tile});
    }
    check_plans(precision::bf16, expected);
}
