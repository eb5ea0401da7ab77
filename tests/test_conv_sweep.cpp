// Every 3x3 convolution of the VGG family (VGG-11/13/16/19 and the seed's presets, at inputs of
// 32, 64 and 224 pixels), through every entry point of kernels/conv3x3.hpp, at batch 1, a small
// batch and a batch large enough for every batch-dependent rule of the dispatcher, on 1 and 2
// threads, in fp32 and bf16, each held against the definition (conv_by_taps.hpp).
//
// With VGG_SWEEP=full (scripts/test.sh --all, Release) every configuration runs; with
// VGG_SWEEP=small (the sanitizer and instruction-set builds) the cheapest configuration of each
// distinct dispatch (the paths the dispatcher chooses: path_of), which reaches every path the full
// sweep reaches; otherwise those and the cheapest configuration of each layer shape.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "conv_by_taps.hpp"
#include "cpu_skip.hpp"
#include "gradient_check.hpp"
#include "test_support.hpp"
#include <vgg/kernels/conv3x3.hpp>

using namespace vgg;
using vgg::testing::fill_uniform;
using vgg::testing::scoped_threads;
using vgg::testing::sweep_size;

namespace {

struct layer_shape {
    std::size_t in, out, height, width;
    bool operator<(const layer_shape& o) const
    {
        return std::tie(in, out, height, width) < std::tie(o.in, o.out, o.height, o.width);
    }
};

/// The convolutions of the VGG family: torchvision's configurations A, B, D and E with 3 input
/// channels, and the seed's VGG-11 (1 input channel) with its channels divided by 4 and by 1, at
/// the input sizes the programs' presets and the torchvision models' tests use; and a few that
/// only a hand-built Sequential has (odd sides, a side of 1, channel counts off every SIMD width).
std::set<layer_shape> vgg_family_shapes()
{
    using blocks = std::vector<std::vector<std::size_t>>;
    struct network {
        std::size_t input_channels;
        blocks arch;
    };
    const std::vector<network> family = {
        {3, {{64}, {128}, {256, 256}, {512, 512}, {512, 512}}},
        {3, {{64, 64}, {128, 128}, {256, 256}, {512, 512}, {512, 512}}},
        {3, {{64, 64}, {128, 128}, {256, 256, 256}, {512, 512, 512}, {512, 512, 512}}},
        {3, {{64, 64}, {128, 128}, {256, 256, 256, 256}, {512, 512, 512, 512}, {512, 512, 512, 512}}},
        {1, {{16}, {32}, {64, 64}, {128, 128}, {128, 128}}},
        {1, {{64}, {128}, {256, 256}, {512, 512}, {512, 512}}},
    };
    std::set<layer_shape> shapes;
    for (const auto& net : family)
        for (const std::size_t input : {32, 64, 224}) {
            std::size_t channels = net.input_channels, side = input;
            for (const auto& block : net.arch) {
                for (const std::size_t out : block) {
                    shapes.insert({channels, out, side, side});
                    channels = out;
                }
                side /= 2;
            }
        }
    for (const layer_shape extra : {layer_shape{256, 256, 4, 4}, layer_shape{32, 17, 7, 7}, layer_shape{5, 6, 9, 8},
                                    layer_shape{24, 40, 6, 10}, layer_shape{16, 16, 1, 1}, layer_shape{3, 20, 13, 2}})
        shapes.insert(extra);
    return shapes;
}

/// Batch 1, a small batch (3: more images than threads, not a multiple of 2), and one large enough
/// that the Winograd rules counting tiles over the batch take their large side (196 tiles of 2x2),
/// plus one image so that the last group of a backward pass is short.
std::vector<std::size_t> batches_for(const layer_shape& s)
{
    const std::size_t pixels = s.height * s.width;
    const std::size_t large =
        std::max<std::size_t>(3, (4 * kernels::winograd_streaming_min_tiles + pixels - 1) / pixels + 1);
    return large == 3 ? std::vector<std::size_t>{1, 3} : std::vector<std::size_t>{1, 3, large};
}

/// What the plans choose for a configuration, on the threads in force: equal strings run the same
/// paths (the plans, and the rules of how a batch falls into threads and groups).
std::string path_of(const kernels::conv3x3_dims& d, std::size_t batch)
{
    using namespace vgg::kernels;
    const std::size_t threads = static_cast<std::size_t>(vgg::max_threads());
    const auto forward = [&](const conv3x3_forward_plan& plan) {
        return std::string(to_string(plan.algorithm)) + " by " + std::string(to_string(plan.split));
    };
    const conv3x3_backward_plan backward = plan_conv3x3_backward(d, batch, true, true, false);
    const conv3x3_backward_plan frozen = plan_conv3x3_backward(d, batch, false, true, false);
    const conv3x3_backward_plan first_layer = plan_conv3x3_backward(d, batch, true, false, true);
    const std::size_t group = winograd_backward_group(d);
    std::ostringstream path;
    path << to_string(d.compute) << " threads " << threads << " forward " << forward(plan_conv3x3_forward(d, batch))
         << " kept " << forward(plan_conv3x3_forward(d, batch, true)) << " weight gradient "
         << to_string(backward.weight_gradient) << " input gradient " << to_string(backward.input_gradient)
         << " frozen " << forward(frozen.adjoint_pass) << " first layer pooled " << first_layer.sums_pooling_windows
         << " groups " << (backward.group > 1) << (batch > group) << (batch % group != 0) << " idle thread "
         << (batch < threads) << " poolable " << (d.height % 2 == 0 && d.width % 2 == 0);
    return path.str();
}

/// The checks of one configuration: failures name the configuration, the output and both values.
struct checker {
    std::string configuration;
    float tolerance; ///< of the largest magnitude of the expected values
    std::size_t failures = 0;

    void operator()(const char* what, const float* got, const std::vector<float>& expected)
    {
        float largest = 0;
        for (float v : expected)
            largest = std::max(largest, std::abs(v));
        const float allowed = tolerance * std::max(largest, 1e-3f);
        for (std::size_t i = 0; i < expected.size(); ++i)
            if (!(std::abs(got[i] - expected[i]) <= allowed)) { // NaN fails too
                ++failures;
                FAIL_CHECK(configuration << ": " << what << "[" << i << "] is " << got[i] << ", the definition gives "
                                         << expected[i] << " (allowed error " << allowed << ")");
                return;
            }
    }
};

/// Inputs and the definition's results of one layer shape and batch, shared by every thread count
/// and precision.
struct sweep_case {
    layer_shape shape;
    std::size_t batch;
    std::vector<float> x, weight, bias, dy, dpooled;
    std::vector<float> y; ///< the definition's conv(x) + bias

    sweep_case(layer_shape s, std::size_t n) : shape(s), batch(n)
    {
        const kernels::conv3x3_dims d = dims(precision::fp32);
        rng random(s.in * 1000003 + s.out * 1009 + s.height * 31 + n);
        x.resize(n * d.in_size());
        weight.resize(d.out_channels * d.patch());
        bias.resize(s.out);
        dy.resize(n * d.out_size());
        dpooled.resize(dy.size() / 4);
        fill_uniform(x, random);
        // Xavier's scale, so that sums of every length have magnitudes near one.
        const float scale = std::sqrt(3.f / float(9 * s.in));
        fill_uniform(weight, random, -scale, scale);
        fill_uniform(bias, random, -0.1f, 0.1f);
        fill_uniform(dy, random);
        fill_uniform(dpooled, random);
        y = taps().forward(x.data(), weight.data(), bias.data());
    }

    kernels::conv3x3_dims dims(precision p) const { return {shape.in, shape.out, shape.height, shape.width, p}; }
    testing::conv_by_taps taps() const { return {shape.in, shape.out, shape.height, shape.width, batch}; }
    bool poolable() const { return shape.height % 2 == 0 && shape.width % 2 == 0; }
};

/// Output buffers start as NaN, so that a value a kernel never wrote fails the comparison.
std::vector<float> unwritten(std::size_t size)
{
    return std::vector<float>(size, std::numeric_limits<float>::quiet_NaN());
}

/// Runs every entry point of kernels/conv3x3.hpp on one configuration and checks each result.
std::size_t run_configuration(const sweep_case& c, precision p, const std::string& name)
{
    const kernels::conv3x3_dims d = c.dims(p);
    const std::size_t n = c.batch;
    checker check{name, p == precision::bf16 ? 3e-2f : 2e-4f};
    const testing::conv_by_taps taps = c.taps();

    // Forward, alone and with ReLU; with kept kernels twice (the first pass copies the weights, the
    // second runs by the kept kernels' rule).
    std::vector<float> y = unwritten(c.y.size());
    kernels::conv3x3_forward(d, n, c.x.data(), c.weight.data(), c.bias.data(), kernels::conv_output::stored(y.data()));
    check("forward", y.data(), c.y);
    std::vector<float> relu_y = c.y;
    for (float& v : relu_y)
        v = std::max(v, 0.f);
    kernels::winograd_kernel_cache kept;
    for (int pass = 0; pass < 2; ++pass) {
        y = unwritten(c.y.size());
        kernels::conv3x3_forward(d, n, c.x.data(), c.weight.data(), c.bias.data(),
                                 kernels::conv_output::stored_through_relu(y.data()), &kept);
        check(pass == 0 ? "forward with ReLU, weights kept" : "forward with ReLU by kept kernels", y.data(), relu_y);
    }

    // Backward, with and without the input gradient, the input gradient alone (a frozen layer: no
    // weight gradient, the adjoint convolution by the forward pass's paths), and through the ReLU
    // of the pass above.
    const auto backward_checks = [&](const char* what, const std::vector<float>& gradient, const auto& run) {
        const auto expected = taps.backward(c.x.data(), gradient.data(), c.weight.data());
        enum class wanted { all, parameters, input };
        for (const wanted w : {wanted::all, wanted::parameters, wanted::input}) {
            std::vector<float> dx = unwritten(c.x.size()), dweight = unwritten(c.weight.size()),
                               dbias = unwritten(c.bias.size());
            const bool parameters = w != wanted::input, input = w != wanted::parameters;
            run(parameters ? dweight.data() : nullptr, parameters ? dbias.data() : nullptr,
                input ? dx.data() : nullptr);
            const std::string prefix = std::string(what) + (w == wanted::all          ? ", with dx: "
                                                            : w == wanted::parameters ? ", without dx: "
                                                                                      : ", dx alone (frozen): ");
            if (input)
                check((prefix + "dx").c_str(), dx.data(), expected.dx);
            if (parameters) {
                check((prefix + "dweight").c_str(), dweight.data(), expected.dweight);
                check((prefix + "dbias").c_str(), dbias.data(), expected.dbias);
            }
        }
    };
    backward_checks("backward", c.dy, [&](float* dweight, float* dbias, float* dx) {
        kernels::conv3x3_backward(d, n, c.x.data(), c.weight.data(),
                                  kernels::conv_output_gradient::of_stored(c.dy.data()), dweight, dbias, dx);
    });
    std::vector<float> masked = c.dy;
    for (std::size_t i = 0; i < masked.size(); ++i)
        masked[i] = y[i] > 0.f ? masked[i] : 0.f;
    backward_checks("backward through ReLU", masked, [&](float* dweight, float* dbias, float* dx) {
        kernels::conv3x3_backward(d, n, c.x.data(), c.weight.data(),
                                  kernels::conv_output_gradient::of_relu(c.dy.data(), y.data()), dweight, dbias, dx);
    });
    if (!c.poolable())
        return check.failures;

    // Convolution + ReLU + 2x2 max-pool, and its backward pass: the definition routes each pooled
    // gradient to the window's winner that the pass chose, where the pooled value passed the ReLU.
    const std::size_t height = d.height, width = d.width, planes = n * d.out_channels;
    std::vector<float> pooled = unwritten(c.dpooled.size()), expected_pooled(c.dpooled.size());
    std::vector<std::uint8_t> argmax(c.dpooled.size(), 255);
    kernels::conv3x3_forward(d, n, c.x.data(), c.weight.data(), c.bias.data(),
                             kernels::conv_output::relu_pooled(pooled.data(), argmax.data()));
    std::vector<float> routed(c.dy.size(), 0.f);
    const std::size_t out_w = width / 2;
    for (std::size_t plane = 0; plane < planes; ++plane)
        for (std::size_t i = 0; i < height / 2; ++i)
            for (std::size_t j = 0; j < out_w; ++j) {
                const std::size_t at = (plane * height / 2 + i) * out_w + j;
                const auto value = [&](std::size_t winner) {
                    return c.y[(plane * height + 2 * i + winner / 2) * width + 2 * j + winner % 2];
                };
                float largest = value(0);
                for (std::size_t w = 1; w < 4; ++w)
                    largest = std::max(largest, value(w));
                expected_pooled[at] = std::max(largest, 0.f);
                if (argmax[at] > 3) {
                    FAIL_CHECK(name << ": the arg-max of pooled value " << at << " is " << int(argmax[at])
                                    << ", not 0 to 3");
                    return check.failures + 1;
                }
                if (pooled[at] > 0.f)
                    routed[(plane * height + 2 * i + argmax[at] / 2) * width + 2 * j + argmax[at] % 2] = c.dpooled[at];
            }
    check("forward with ReLU and max-pool", pooled.data(), expected_pooled);
    backward_checks("backward through max-pool and ReLU", routed, [&](float* dweight, float* dbias, float* dx) {
        kernels::conv3x3_backward(
            d, n, c.x.data(), c.weight.data(),
            kernels::conv_output_gradient::of_relu_pooled(c.dpooled.data(), pooled.data(), argmax.data()), dweight,
            dbias, dx);
    });
    return check.failures;
}

void sweep(precision p)
{
    const auto started = std::chrono::steady_clock::now();
    const sweep_size size = testing::sweep_size_asked();
    const bool full = size == sweep_size::full, every_shape = size != sweep_size::small;
    // The configurations, cheapest first, so that the sample takes the cheapest of each path.
    struct configuration {
        layer_shape shape;
        std::size_t batch;
        int threads;
        std::size_t cost;
    };
    std::vector<configuration> all;
    for (const layer_shape& s : vgg_family_shapes())
        for (const std::size_t batch : batches_for(s))
            for (const int threads : {1, 2})
                // Multiply-adds, and per image what a map's size does not shrink (kernel transforms, sums).
                all.push_back({s, batch, threads, batch * s.in * s.out * (s.height * s.width + 32)});
    std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.cost < b.cost; });
    std::set<std::string> paths;
    std::set<layer_shape> shapes;
    std::vector<configuration> chosen;
    for (const configuration& c : all) {
        scoped_threads threads(c.threads);
        const bool new_path =
            paths.insert(path_of({c.shape.in, c.shape.out, c.shape.height, c.shape.width, p}, c.batch)).second;
        const bool new_shape = shapes.insert(c.shape).second && every_shape;
        if (full || new_path || new_shape)
            chosen.push_back(c);
    }
    // Cases (inputs and the definition's results) in the order chosen, made once for both thread counts.
    std::map<std::pair<layer_shape, std::size_t>, std::unique_ptr<sweep_case>> cases;
    std::size_t failures = 0;
    for (const configuration& c : chosen) {
        auto& made = cases[{c.shape, c.batch}];
        if (!made)
            made = std::make_unique<sweep_case>(c.shape, c.batch);
        scoped_threads threads(c.threads);
        std::ostringstream name;
        name << to_string(p) << " Conv3x3<" << c.shape.in << ", " << c.shape.out << "> at " << c.shape.height << "x"
             << c.shape.width << ", batch " << c.batch << ", " << c.threads << " thread(s)";
        failures += run_configuration(*made, p, name.str());
        if (failures > 20)
            break;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    MESSAGE(std::string(full          ? "full sweep: "
                        : every_shape ? "sample of every dispatch and shape: "
                                      : "sample of every dispatch: ")
            << chosen.size() << " of " << all.size() << " configurations (" << vgg_family_shapes().size()
            << " layer shapes), " << paths.size() << " distinct dispatches, " << seconds << " s");
    CHECK(failures == 0);
}

} // namespace

TEST_CASE(
    "every VGG-family convolution, every dispatch, fp32: forward, ReLU, max-pool and gradients equal the definition")
{
    sweep(precision::fp32);
}

TEST_CASE(
    "every VGG-family convolution, every dispatch, bf16: forward, ReLU, max-pool and gradients equal the definition")
{
    testing::skip_unless_bf16();
    if (!kernels::bf16_kernel_runs(kernels::bf16_kernel::amx))
        MESSAGE("the AMX paths are not reached on this CPU (AVX512_BF16's are): "
                << kernels::bf16_kernel_missing(kernels::bf16_kernel::amx));
    sweep(precision::bf16);
}

TEST_CASE("a wide convolution on a small map trains with an input gradient (the Winograd weight gradient and im2col "
          "input gradient share no buffer)")
{
    // 256 -> 256 at 4x4, 8 images: the weight gradient runs by F(4x4) Winograd, the input gradient
    // by im2col (kernels over winograd_cached_kernel_bytes, too few tiles to stream them).
    const layer_shape s{256, 256, 4, 4};
    const kernels::conv3x3_dims d{s.in, s.out, s.height, s.width};
    REQUIRE(kernels::winograd_weight_gradient_tile(d) == 4);
    REQUIRE(kernels::winograd_tile(d, kernels::winograd_backward_group(d)) == 0);
    for (const int threads : {1, 2}) {
        scoped_threads scoped(threads);
        const sweep_case c(s, 8);
        CHECK(run_configuration(c, precision::fp32, "Conv3x3<256, 256> at 4x4, batch 8") == 0);
    }
}
