#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <tuple>

#include "gradient_check.hpp"
#include <vgg/kernels/conv_reference.hpp>

using namespace vgg;
using vgg::testing::fill_uniform;
using vgg::testing::scoped_threads;

namespace {

template <std::size_t Cin, std::size_t Cout, std::size_t H, std::size_t W>
struct conv_case {
    static constexpr std::size_t in = Cin, out = Cout, height = H, width = W;
};

float max_abs_difference(std::span<const float> a, std::span<const float> b)
{
    float worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        worst = std::max(worst, std::abs(a[i] - b[i]));
    return worst;
}

float largest_magnitude(std::span<const float> values)
{
    float largest = 0;
    for (float v : values)
        largest = std::max(largest, std::abs(v));
    return largest;
}

} // namespace

TEST_CASE_TEMPLATE("im2col + GEMM convolution equals the direct definition", Case, conv_case<1, 1, 1, 1>,
                   conv_case<1, 16, 28, 28>, conv_case<3, 8, 5, 7>, conv_case<16, 32, 14, 14>, conv_case<7, 5, 2, 9>,
                   conv_case<32, 17, 7, 7>, conv_case<2, 3, 33, 1>)
{
    using layer_t = typename Conv3x3<Case::in, Case::out>::template layer<shape<Case::in, Case::height, Case::width>>;
    for (std::size_t batch : {1, 2, 5}) {
        CAPTURE(batch);
        layer_t conv;
        rng random(batch);
        conv.initialize(weight_init::xavier_uniform, random);
        fill_uniform(conv.bias.value, random);
        tensor<typename layer_t::input_shape> x(batch);
        tensor<typename layer_t::output_shape> fast, reference(batch);
        fill_uniform(x.values(), random);
        conv.forward(x, fast, {});
        kernels::conv3x3_reference(batch, Case::in, Case::out, Case::height, Case::width, x.data(),
                                   conv.weight.value.data(), conv.bias.value.data(), reference.data());
        CHECK(max_abs_difference(fast.values(), reference.values()) < 1e-4f);

        conv.forward(x, fast, {}, conv_epilogue::relu);
        for (auto& v : reference.values())
            v = std::max(v, 0.f);
        CHECK(max_abs_difference(fast.values(), reference.values()) < 1e-4f);
    }
}

namespace {

/// Winograd F(Tile x Tile, 3x3) convolution, its adjoint and the weight gradient by its adjoint
/// against the direct definition, with sizes in multiples of `Tile`.
template <std::size_t Tile>
void check_winograd(kernels::winograd_workspace& scratch)
{
    // Sizes cover one tile, SIMD tails of the flat tile index, several chunks, chunks that span
    // images, channel counts that are not multiples of the GEMM's row panels, kernels too large
    // for L2 and for L3 (longer chunks), and more source channels than the kernel transform's block.
    struct sizes {
        std::size_t in, out, height, width;
    };
    constexpr std::size_t images = 2;
    for (const auto [in, out, height, width] :
         {sizes{1, 1, Tile, Tile}, sizes{3, 5, 2 * Tile, 20 * Tile}, sizes{17, 9, 28, 28}, sizes{16, 24, 3 * Tile, 300},
          sizes{20, 16, 112, 4 * Tile}, sizes{4, 6, Tile, 16 * Tile}, sizes{5, 3, 3 * Tile, 17 * Tile},
          sizes{96, 90, 2 * Tile, 3 * Tile}, sizes{200, 170, 2 * Tile, 3 * Tile},
          sizes{kernels::winograd_kernel_source_block + 4, 20, Tile, 2 * Tile},
          sizes{20, kernels::winograd_kernel_source_block + 4, Tile, 2 * Tile}}) {
        CAPTURE(in);
        CAPTURE(out);
        CAPTURE(height);
        CAPTURE(width);
        rng random(in * 1000 + width);
        const std::size_t plane = height * width, tile_rows = height / Tile;
        std::vector<float> x(images * in * plane), weight(out * in * 9), bias(out), dy(images * out * plane);
        for (auto* values : {&x, &weight, &bias, &dy})
            fill_uniform(*values, random);
        // The adjoint's kernels written out: channels swapped, each window turned by 180 degrees.
        std::vector<float> adjoint_weight(weight.size()), no_bias(in, 0.f);
        for (std::size_t k = 0; k < out; ++k)
            for (std::size_t c = 0; c < in; ++c)
                for (std::size_t i = 0; i < 9; ++i)
                    adjoint_weight[(c * out + k) * 9 + i] = weight[(k * in + c) * 9 + 8 - i];

        // The batch's tile rows, or the panels of target channels, in `pieces` ranges, as threads
        // share them (some may be empty).
        auto run = [&](std::size_t from, std::size_t to, const float* input, bool adjoint, const float* b,
                       std::size_t pieces, bool by_targets) {
            aligned_vector<float> u(kernels::winograd_kernels_size<Tile>(from, to), std::nanf(""));
            kernels::winograd_transform_kernels<Tile>(weight.data(), out, in, adjoint, {0, to}, u.data());
            std::vector<float> result(images * to * plane);
            const std::size_t panels = kernels::winograd_panel_rows(to) / kernels::micro_rows;
            for (std::size_t piece = 0; piece < pieces; ++piece) {
                const auto own = detail::partition(by_targets ? panels : images * tile_rows, pieces, piece);
                const detail::range targets = kernels::winograd_panel_targets(own, to);
                kernels::winograd_conv3x3_rows<Tile>(
                    from, to, height, width, input, u.data(), b, scratch,
                    by_targets ? detail::range{0, images * tile_rows} : own,
                    by_targets ? targets : detail::range{0, to},
                    [&](std::size_t n, std::size_t k, std::size_t ty, const kernels::tile_row_outputs& o) {
                        kernels::store_tile_row(o, width, &result[((n * to + k) * height + Tile * ty) * width], false);
                    });
            }
            return result;
        };
        std::vector<float> reference(images * out * plane), adjoint_reference(images * in * plane);
        kernels::conv3x3_reference(images, in, out, height, width, x.data(), weight.data(), bias.data(),
                                   reference.data());
        kernels::conv3x3_reference(images, out, in, height, width, dy.data(), adjoint_weight.data(), no_bias.data(),
                                   adjoint_reference.data());
        // Errors relative to the largest output: F(2x2, 3x3) about 3e-7 here, F(4x4, 3x3) up to 8e-6 (its
        // transforms' larger interpolation points lose more digits).
        const float relative = Tile == 4 ? 3e-5f : 1e-6f;
        const float tolerance = relative * (1 + largest_magnitude(reference)),
                    adjoint_tolerance = relative * (1 + largest_magnitude(adjoint_reference));
        for (std::size_t pieces : {1, 3})
            for (bool by_targets : {false, true}) {
                CAPTURE(pieces);
                CAPTURE(by_targets);
                CHECK(max_abs_difference(run(in, out, x.data(), false, bias.data(), pieces, by_targets), reference) <
                      tolerance);
                CHECK(max_abs_difference(run(out, in, dy.data(), true, nullptr, pieces, by_targets),
                                         adjoint_reference) < adjoint_tolerance);
            }

        // Pooling straight from the tiles gives what max-pool and ReLU give on the stored outputs, bit for bit.
        aligned_vector<float> u(kernels::winograd_kernels_size<Tile>(in, out));
        kernels::winograd_transform_kernels<Tile>(weight.data(), out, in, false, {0, out}, u.data());
        const std::size_t pooled_size = out * height * width / 4;
        std::vector<float> stored(out * height * width), pooled(pooled_size), pooled_from_tiles(pooled_size);
        std::vector<std::uint8_t> argmax(pooled_size), argmax_from_tiles(pooled_size);
        kernels::winograd_conv3x3_rows<Tile>(
            in, out, height, width, x.data(), u.data(), bias.data(), scratch, {0, tile_rows}, {0, out},
            [&](std::size_t, std::size_t k, std::size_t ty, const kernels::tile_row_outputs& o) {
                kernels::store_tile_row(o, width, &stored[(k * height + Tile * ty) * width], false);
                const std::size_t at = (k * height + Tile * ty) / 2 * (width / 2);
                kernels::pool_tile_row(o, width, &pooled_from_tiles[at], &argmax_from_tiles[at]);
            });
        kernels::maxpool2x2_planes(0, out, height, width, stored.data(), pooled.data(), argmax.data());
        kernels::relu_inplace(pooled.data(), pooled_size);
        CHECK(pooled_from_tiles == pooled);
        CHECK(argmax_from_tiles == argmax);
        // Weight gradient over both images: dW[k][c][ky][kx] = sum over images and pixels of
        // dy[k][y][x] x[c][y + ky - 1][x + kx - 1], in the longest chunks of tiles it runs (128), in
        // chunks of 5 (a shorter last one; chunks that span images) and in those winograd_gradient_chunk picks.
        std::vector<double> reference_dweight(weight.size(), 0.0);
        for (std::size_t n = 0; n < images; ++n)
            for (std::size_t k = 0; k < out; ++k)
                for (std::size_t c = 0; c < in; ++c)
                    for (std::size_t i = 0; i < 9; ++i)
                        for (std::size_t y = 0; y < height; ++y)
                            for (std::size_t x_ = 0; x_ < width; ++x_) {
                                const std::size_t sy = y + i / 3, sx = x_ + i % 3; // source + 1
                                if (sy >= 1 && sy <= height && sx >= 1 && sx <= width)
                                    reference_dweight[(k * in + c) * 9 + i] +=
                                        double(dy[((n * out + k) * height + y) * width + x_]) *
                                        x[((n * in + c) * height + sy - 1) * width + sx - 1];
                            }
        const std::size_t tiles = images * plane / (Tile * Tile);
        for (std::size_t chunk : {kernels::winograd_streamed_gradient_chunk_tiles, std::size_t{5},
                                  kernels::winograd_gradient_chunk<Tile>(in, out, tiles)}) {
            CAPTURE(chunk);
            // Overwriting sums that hold NaN, then adding the same images again: twice the gradient.
            aligned_vector<float> sums(kernels::winograd_weight_sums_size<Tile>(in, out), std::nanf(""));
            std::vector<float> dweight(weight.size(), 0.f);
            std::vector<float> bias_sums(out, 1.f); // added to
            for (const auto update : {kernels::gemm_update::overwrite, kernels::gemm_update::accumulate})
                kernels::winograd_accumulate_weight_gradient<Tile>(
                    in, out, height, width, images, x.data(), dy.data(), scratch, sums.data(), chunk, update,
                    update == kernels::gemm_update::overwrite ? bias_sums.data() : nullptr);
            for (std::size_t k = 0; k < out; ++k) {
                double sum = 1;
                for (std::size_t n = 0; n < images; ++n)
                    for (std::size_t p = 0; p < plane; ++p)
                        sum += dy[(n * out + k) * plane + p];
                CHECK(bias_sums[k] == doctest::Approx(sum).epsilon(1e-4));
            }
            kernels::winograd_weight_gradient<Tile>(sums.data(), in, out, dweight.data());
            // Within the forward pass's bounds, relative to the largest sum: F(2x2) ~3e-7 here, F(4x4) ~4e-6.
            double largest = 0, worst = 0;
            for (const double sum : reference_dweight)
                largest = std::max(largest, std::abs(sum));
            for (std::size_t i = 0; i < dweight.size(); ++i)
                worst = std::max(worst, std::abs(dweight[i] - 2 * reference_dweight[i]));
            CHECK(worst < relative * (1 + 2 * largest));
        }
    }
}

} // namespace

TEST_CASE("Winograd F(2x2, 3x3) and F(4x4, 3x3) convolutions and their adjoints equal the direct definition")
{
    // One workspace for every size and tile, as a thread's would be: nothing may depend on its last use.
    kernels::winograd_workspace scratch;
    check_winograd<2>(scratch);
    check_winograd<4>(scratch);
}

TEST_CASE("the Winograd kernel transform stores G g G^T in the GEMM's panels, from ranges of whole panels")
{
    // Sizes cover a partial SIMD batch of sources, a partial panel of targets, and more sources
    // than one block of the transform.
    using kernels::micro_rows;
    struct sizes {
        std::size_t in, out;
    };
    for (const auto [in, out] :
         {sizes{3, 5}, sizes{17, 9}, sizes{kernels::winograd_kernel_source_block + 20, 12}, sizes{20, 33}})
        for (const bool adjoint : {false, true})
            for (const std::size_t tile : {2, 4})
                kernels::with_winograd_tile(tile, [&]<std::size_t Tile>() {
                    CAPTURE(in);
                    CAPTURE(out);
                    CAPTURE(adjoint);
                    CAPTURE(Tile);
                    constexpr std::size_t window = Tile + 2;
                    const std::size_t to = adjoint ? in : out, from = adjoint ? out : in;
                    const std::size_t panel_rows = kernels::winograd_panel_rows(to), panels = panel_rows / micro_rows;
                    rng random(in * 100 + out);
                    std::vector<float> weight(out * in * 9);
                    fill_uniform(weight, random);
                    aligned_vector<float> u(kernels::winograd_kernels_size<Tile>(from, to), std::nanf(""));
                    // Two ranges, as two threads would take the panels (the first is empty with one panel).
                    const std::size_t split = panels / 2 * micro_rows;
                    kernels::winograd_transform_kernels<Tile>(weight.data(), out, in, adjoint, {0, split}, u.data());
                    kernels::winograd_transform_kernels<Tile>(weight.data(), out, in, adjoint, {split, to}, u.data());
                    std::size_t wrong = 0;
                    for (std::size_t o = 0; o < panel_rows; ++o)
                        for (std::size_t i = 0; i < from; ++i) {
                            float g[3][3] = {}, expected[window][window] = {};
                            for (std::size_t k = 0; k < 9 && o < to; ++k)
                                g[k / 3][k % 3] =
                                    adjoint ? weight[(i * in + o) * 9 + 8 - k] : weight[(o * in + i) * 9 + k];
                            kernels::detail::transform_2d(g, expected,
                                                          kernels::detail::winograd_transforms<Tile>::kernel);
                            for (std::size_t xi = 0; xi < window * window; ++xi) {
                                const float stored = u[xi * from * panel_rows +
                                                       (o / micro_rows * from + i) * micro_rows + o % micro_rows];
                                const float value = expected[xi / window][xi % window];
                                wrong +=
                                    !(std::abs(stored - value) <= 1e-6f * (1 + std::abs(value))); // NaN: never written
                            }
                        }
                    CHECK(wrong == 0);
                });
}

TEST_CASE("the Winograd tile: F(4x4) before F(2x2), kernels larger than L2 made in the pass only for enough tiles")
{
    const scoped_threads two(2); // fewer images than threads split the output channels, with other rules
    using kernels::winograd_backward_group, kernels::winograd_gradient_chunk, kernels::winograd_tile,
        kernels::winograd_weight_gradient_tile;
    CHECK(winograd_tile({64, 64, 56, 56}, 1) == 4);
    CHECK(winograd_tile({128, 128, 14, 14}, 128) == 2); // 14 is not a multiple of 4
    CHECK(winograd_tile({8, 64, 56, 56}, 128) == 0);    // too few channels
    // VGG-16's 512-channel layers: 38 MB of F(4x4) kernels, 16 MB of F(2x2); a 28x28 image has 49 tiles by
    // F(4x4) and 196 by F(2x2), a 14x14 image 49 by F(2x2).
    CHECK(winograd_tile({512, 512, 28, 28}, 4) == 4);
    CHECK(winograd_tile({512, 512, 28, 28}, 3) == 2);
    CHECK(winograd_tile({512, 512, 28, 28}, 1) == 2);
    CHECK(winograd_tile({512, 512, 14, 14}, 4) == 2);
    CHECK(winograd_tile({512, 512, 14, 14}, 3) == 0);
    // Kept kernels (winograd_kernel_cache) are only read: Winograd at any batch.
    CHECK(winograd_tile({512, 512, 28, 28}, 1, true) == 4);
    CHECK(winograd_tile({512, 512, 14, 14}, 3, true) == 2);
    CHECK(winograd_tile({8, 64, 56, 56}, 128, true) == 0);
    // The weight gradient by F(4x4) where the sides are multiples of 4, else by F(2x2), over the
    // backward pass's groups of images.
    CHECK(winograd_weight_gradient_tile({64, 64, 224, 224}) == 4);
    CHECK(winograd_weight_gradient_tile({512, 512, 28, 28}) == 4);
    CHECK(winograd_weight_gradient_tile({64, 64, 14, 14}) == 2);
    CHECK(winograd_weight_gradient_tile({512, 512, 7, 7}) == 0);
    CHECK(winograd_weight_gradient_tile({8, 64, 56, 56}) == 0);
    CHECK(winograd_backward_group({512, 512, 28, 28}) == 4);
    CHECK(winograd_backward_group({512, 512, 14, 14}) == 8);
    CHECK(winograd_backward_group({64, 64, 56, 56}) == 1);
    // Its chunks: equal, at most 64 tiles while all the sums fit in 1 MiB (64 channels a side by
    // F(4x4), 128 by F(2x2)), else at most 128.
    CHECK(winograd_gradient_chunk<4>(64, 64, 3136) == 64);
    CHECK(winograd_gradient_chunk<4>(64, 64, 3137) == 63);
    CHECK(winograd_gradient_chunk<2>(128, 128, 196) == 49);
    CHECK(winograd_gradient_chunk<4>(128, 128, 196) == 98);
    CHECK(winograd_gradient_chunk<4>(512, 512, 196) == 98);
    CHECK(winograd_gradient_chunk<4>(512, 512, 100) == 100);
    CHECK(winograd_gradient_chunk<4>(512, 512, 1) == 1);
    // The forward pass's chunks: short while the transformed kernels stay in L2 or L3 (128 -> 128
    // channels by F(4x4): 2.4 MB), longer from 128 -> 256 (4.7 MB), read from memory by each chunk.
    using kernels::winograd_chunk_tiles, kernels::winograd_forward_chunk_tiles, kernels::winograd_streaming_chunk_tiles;
    CHECK(winograd_chunk_tiles<4>(64, 64) == winograd_forward_chunk_tiles<4>);
    CHECK(winograd_chunk_tiles<4>(128, 128) == winograd_forward_chunk_tiles<4>);
    CHECK(winograd_chunk_tiles<4>(128, 256) == winograd_streaming_chunk_tiles);
    CHECK(winograd_chunk_tiles<2>(128, 256) == winograd_forward_chunk_tiles<2>);
    CHECK(winograd_chunk_tiles<2>(512, 512) == winograd_streaming_chunk_tiles);
}

TEST_CASE("a Winograd forward pass of fewer images than threads splits the output channels between them")
{
    const scoped_threads two(2);
    CHECK(kernels::winograd_splits_targets({16, 256, 8, 8}, 1));
    CHECK_FALSE(kernels::winograd_splits_targets({16, 256, 8, 8}, 2));      // as many images as threads
    CHECK_FALSE(kernels::winograd_splits_targets({128, 128, 112, 112}, 1)); // 64 channels a thread
    // Streamed kernels of F(2x2) pay from 49 tiles when each thread reads only its share (VGG-16's
    // 14x14 layers at batch 1); F(4x4)'s do not.
    CHECK(kernels::winograd_tile({512, 512, 14, 14}, 1) == 2);
    CHECK(kernels::winograd_tile({512, 512, 28, 28}, 1) == 2);
    {
        const scoped_threads one(1);
        CHECK(kernels::winograd_tile({512, 512, 14, 14}, 1) == 0);
    }
    // One image by F(4x4) and by F(2x2) (6x6), the second with a partial last panel of targets,
    // stored and pooled, against the direct definition.
    struct sizes {
        std::size_t in, out, side;
    };
    for (const auto [in, out, side] : {sizes{16, 256, 8}, sizes{20, 260, 6}}) {
        CAPTURE(out);
        const kernels::conv3x3_dims d{in, out, side, side};
        REQUIRE(kernels::winograd_splits_targets(d, 1));
        REQUIRE(kernels::winograd_tile(d, 1) == (side % 4 ? 2 : 4));
        rng random(out);
        std::vector<float> x(d.in_size()), weight(out * in * 9), bias(out), reference(d.out_size()), y(d.out_size());
        for (auto* values : {&x, &weight, &bias})
            fill_uniform(*values, random);
        kernels::conv3x3_reference(1, in, out, side, side, x.data(), weight.data(), bias.data(), reference.data());
        kernels::conv3x3_forward(d, 1, x.data(), weight.data(), bias.data(), kernels::conv_output::stored(y.data()));
        CHECK(max_abs_difference(y, reference) < 1e-4f);

        std::vector<float> pooled(d.out_size() / 4), pooled_reference(d.out_size() / 4);
        std::vector<std::uint8_t> argmax(pooled.size()), argmax_reference(pooled.size());
        kernels::conv3x3_forward(d, 1, x.data(), weight.data(), bias.data(),
                                 kernels::conv_output::relu_pooled(pooled.data(), argmax.data()));
        kernels::maxpool2x2_forward(out, side, side, reference.data(), pooled_reference.data(),
                                    argmax_reference.data());
        for (auto& v : pooled_reference)
            v = std::max(v, 0.f);
        CHECK(max_abs_difference(pooled, pooled_reference) < 1e-4f);
    }
}

TEST_CASE("kept Winograd kernels are made again whenever the weights or the tile change")
{
    // 32 -> 48 channels, one image: F(4x4) at 8x8 and F(2x2) at 6x6 (the same number of weights),
    // over tile rows, kept or not; kept kernels must give the bytes of kernels made in the pass.
    const std::size_t in = 32, out = 48;
    rng random(11);
    std::vector<float> weight(out * in * 9), bias(out);
    fill_uniform(weight, random);
    fill_uniform(bias, random);
    kernels::winograd_kernel_cache kept;
    const auto convolve = [&](const kernels::conv3x3_dims& d, const std::vector<float>& x,
                              kernels::winograd_kernel_cache* cache) {
        std::vector<float> y(d.out_size());
        kernels::conv3x3_forward(d, 1, x.data(), weight.data(), bias.data(), kernels::conv_output::stored(y.data()),
                                 cache);
        return y;
    };
    const kernels::conv3x3_dims d8{in, out, 8, 8}, d6{in, out, 6, 6};
    REQUIRE(kernels::winograd_tile(d8, 1, true) == 4);
    REQUIRE(kernels::winograd_tile(d6, 1, true) == 2);
    std::vector<float> x8(d8.in_size()), x6(d6.in_size()), reference(d8.out_size());
    fill_uniform(x8, random);
    fill_uniform(x6, random);
    kernels::conv3x3_reference(1, in, out, 8, 8, x8.data(), weight.data(), bias.data(), reference.data());
    const auto first = convolve(d8, x8, &kept);
    CHECK(max_abs_difference(first, reference) < 1e-5f * (1 + largest_magnitude(reference))); // F(4x4) rounding
    CHECK(first == convolve(d8, x8, nullptr));
    CHECK(first == convolve(d8, x8, &kept)); // from the kept kernels
    // A change anywhere in the weights, the first, a middle or the last one, is seen.
    for (const std::size_t at : {std::size_t{0}, weight.size() / 2, weight.size() - 1}) {
        CAPTURE(at);
        const auto before = convolve(d8, x8, &kept);
        weight[at] += 0.25f;
        const auto after = convolve(d8, x8, &kept);
        CHECK(after != before);
        CHECK(after == convolve(d8, x8, nullptr));
    }
    // Another tile with weights of the same size: made again by F(2x2).
    CHECK(convolve(d6, x6, &kept) == convolve(d6, x6, nullptr));
    // Where the kept kernels' rule picks another tile than the pass's own, a pass with changed
    // weights runs by its own rule (and copies them), the next ones by the kept kernels' rule:
    // 96 -> 96 at 8x8 has 1.3 MB of F(4x4) kernels, too large to make for 4 tiles in the pass.
    {
        const kernels::conv3x3_dims d{96, 96, 8, 8};
        std::vector<float> weights(d.out_channels * d.patch()), biases(96), x(d.in_size()), reference(d.out_size());
        for (auto* values : {&weights, &biases, &x})
            fill_uniform(*values, random);
        kernels::conv3x3_reference(1, 96, 96, 8, 8, x.data(), weights.data(), biases.data(), reference.data());
        kernels::winograd_kernel_cache cache;
        std::vector<std::size_t> tiles;
        for (int pass = 0; pass < 3; ++pass) {
            tiles.push_back(kernels::plan_conv3x3_forward(d, 1, weights.data(), &cache).winograd_tile());
            std::vector<float> y(d.out_size());
            kernels::conv3x3_forward(d, 1, x.data(), weights.data(), biases.data(),
                                     kernels::conv_output::stored(y.data()), &cache);
            CHECK(max_abs_difference(y, reference) < 1e-5f * (1 + largest_magnitude(reference)));
        }
        weights.back() = -weights.back();
        tiles.push_back(kernels::plan_conv3x3_forward(d, 1, weights.data(), &cache).winograd_tile());
        CHECK(tiles == std::vector<std::size_t>{2, 4, 4, 2});
        CHECK(kernels::winograd_tile(d, 1) == 2);
    }
    // The pooled pass reads them too.
    std::vector<float> pooled(d6.out_size() / 4), pooled_kept(pooled.size());
    std::vector<std::uint8_t> argmax(pooled.size()), argmax_kept(pooled.size());
    kernels::conv3x3_forward(d6, 1, x6.data(), weight.data(), bias.data(),
                             kernels::conv_output::relu_pooled(pooled.data(), argmax.data()));
    weight[1] -= 0.5f;
    kernels::conv3x3_forward(d6, 1, x6.data(), weight.data(), bias.data(),
                             kernels::conv_output::relu_pooled(pooled_kept.data(), argmax_kept.data()), &kept);
    CHECK(pooled_kept != pooled);
    kernels::conv3x3_forward(d6, 1, x6.data(), weight.data(), bias.data(),
                             kernels::conv_output::relu_pooled(pooled.data(), argmax.data()));
    CHECK(pooled_kept == pooled);
    CHECK(argmax_kept == argmax);
}

TEST_CASE("a convolution layer evaluates with the weights it has now, and trains as before, after evaluating")
{
    using conv_t = conv3x3_layer<16, 32, shape<16, 8, 8>>;
    conv_t conv;
    rng random(12);
    conv.initialize(weight_init::xavier_uniform, random);
    tensor<shape<16, 8, 8>> x(1);
    fill_uniform(x.values(), random);
    const auto direct = [&](const conv_t& layer) {
        std::vector<float> reference(32 * 8 * 8);
        kernels::conv3x3_reference(1, 16, 32, 8, 8, x.data(), layer.weight.value.data(), layer.bias.value.data(),
                                   reference.data());
        return reference;
    };
    tensor<shape<32, 8, 8>> y;
    for (const auto pass : {mode::eval, mode::eval, mode::train, mode::eval}) {
        CAPTURE(pass == mode::eval);
        conv.weight.value[7] += 0.5f; // as an optimizer step or a user's edit would
        conv.forward(x, y, {pass, 0});
        CHECK(max_abs_difference(y.values(), direct(conv)) < 1e-4f);
    }
}

TEST_CASE("deinterleave splits interleaved values into one batch per way, interleave undoes it, transpose transposes")
{
    constexpr std::size_t lanes = kernels::float_batch::size;
    auto check = [&]<std::size_t Ways>() {
        CAPTURE(Ways);
        alignas(64) float values[Ways * lanes], out[Ways * lanes];
        for (std::size_t i = 0; i < Ways * lanes; ++i)
            values[i] = float(i);
        kernels::float_batch interleaved[Ways], ways[Ways], again[Ways];
        for (std::size_t i = 0; i < Ways; ++i)
            interleaved[i] = kernels::float_batch::load_aligned(values + i * lanes);
        kernels::deinterleave(interleaved, ways);
        for (std::size_t w = 0; w < Ways; ++w) {
            ways[w].store_aligned(out);
            for (std::size_t g = 0; g < lanes; ++g)
                CHECK(out[g] == values[Ways * g + w]);
        }
        kernels::interleave(ways, again);
        for (std::size_t i = 0; i < Ways; ++i) {
            again[i].store_aligned(out);
            CHECK(std::equal(out, out + lanes, values + i * lanes));
        }
    };
    check.template operator()<2>();
    check.template operator()<4>();

    alignas(64) float square[lanes * lanes], row[lanes];
    kernels::float_batch rows[lanes];
    for (std::size_t i = 0; i < lanes * lanes; ++i)
        square[i] = float(i);
    for (std::size_t i = 0; i < lanes; ++i)
        rows[i] = kernels::float_batch::load_aligned(square + i * lanes);
    kernels::transpose(rows);
    for (std::size_t i = 0; i < lanes; ++i) {
        rows[i].store_aligned(row);
        for (std::size_t j = 0; j < lanes; ++j)
            CHECK(row[j] == square[j * lanes + i]);
    }
}

TEST_CASE("the direct one-channel weight gradient equals the definition")
{
    // Widths below, at and past one SIMD strip; channel counts odd and even (pairs and a single).
    struct sizes {
        std::size_t out, height, width;
    };
    for (const auto [out, height, width] : {sizes{1, 1, 1}, sizes{3, 5, 16}, sizes{16, 7, 37}, sizes{5, 3, 70}}) {
        CAPTURE(out);
        CAPTURE(height);
        CAPTURE(width);
        rng random(out * 100 + width);
        std::vector<float> x(height * width), dy(out * height * width), dweight(out * 9);
        for (auto* values : {&x, &dy, &dweight})
            fill_uniform(*values, random);
        const auto before = dweight;
        std::vector<float> padded((height + 2) * (width + 2));
        kernels::conv3x3_single_channel_weight_gradient(x.data(), height, width, dy.data(), out, padded.data(),
                                                        dweight.data());
        double worst = 0;
        for (std::size_t k = 0; k < out; ++k)
            for (std::size_t i = 0; i < 9; ++i) {
                double sum = before[k * 9 + i]; // the kernel adds to what is there
                for (std::size_t y = 0; y < height; ++y)
                    for (std::size_t x_ = 0; x_ < width; ++x_) {
                        const std::size_t sy = y + i / 3, sx = x_ + i % 3; // source + 1
                        if (sy >= 1 && sy <= height && sx >= 1 && sx <= width)
                            sum += double(dy[(k * height + y) * width + x_]) * x[(sy - 1) * width + sx - 1];
                    }
                worst = std::max(worst, std::abs(dweight[k * 9 + i] - sum) / (1 + std::abs(sum)));
            }
        CHECK(worst < 1e-5);
    }
}

TEST_CASE(
    "the one-channel convolution pooled in registers equals convolution, max-pool and ReLU, and so do its gradients")
{
    for (std::size_t height : {2, 6, 224})
        for (std::size_t width : {2, 8, 30, 32, 34, 66}) {
            if (height == 224 && width != 66)
                continue;
            for (std::size_t channels : {1, 3, 16}) {
                CAPTURE(height);
                CAPTURE(width);
                CAPTURE(channels);
                rng random(height * 100 + width + channels);
                const std::size_t pixels = height * width, plane = pixels / 4;
                std::vector<float> image(pixels), weight(channels * 9), bias(channels), dpooled(channels * plane);
                for (auto* values : {&image, &weight, &bias, &dpooled})
                    fill_uniform(*values, random);
                std::vector<float> padded((height + 2) * (width + 2)), full(channels * pixels),
                    pooled(channels * plane);
                std::vector<std::uint8_t> argmax(channels * plane), fused_argmax(channels * plane);
                kernels::conv3x3_single_channel(image.data(), height, width, weight.data(), bias.data(), channels,
                                                padded.data(), full.data());
                kernels::maxpool2x2_planes(0, channels, height, width, full.data(), pooled.data(), argmax.data());
                kernels::relu_inplace(pooled.data(), pooled.size());

                std::vector<float> split(kernels::detail::split_columns_size(height, width)), fused(channels * plane);
                kernels::conv3x3_single_channel_relu_pool(image.data(), height, width, weight.data(), bias.data(),
                                                          channels, split.data(), fused.data(), fused_argmax.data());
                CHECK(fused == pooled);
                CHECK(fused_argmax == argmax);

                // Gradients: the pooled gradient through ReLU and the arg-max to full resolution, then the direct sums.
                std::vector<float> masked = dpooled, routed(channels * pixels), dweight(channels * 9, 0.f),
                                   dweight_fused(channels * 9, 0.f), dbias_fused(channels, 0.f);
                kernels::relu_backward_inplace(masked.data(), pooled.data(), masked.size());
                kernels::maxpool2x2_planes_backward(0, channels, height, width, masked.data(), argmax.data(),
                                                    routed.data());
                kernels::conv3x3_single_channel_weight_gradient(image.data(), height, width, routed.data(), channels,
                                                                padded.data(), dweight.data());
                kernels::conv3x3_single_channel_relu_pool_weight_gradient(
                    image.data(), height, width, dpooled.data(), pooled.data(), argmax.data(), channels, split.data(),
                    dweight_fused.data(), dbias_fused.data());
                for (std::size_t i = 0; i < dweight.size(); ++i)
                    CHECK(dweight_fused[i] == doctest::Approx(dweight[i]).epsilon(1e-4));
                for (std::size_t o = 0; o < channels; ++o) {
                    double sum = 0;
                    for (std::size_t p = 0; p < plane; ++p)
                        sum += masked[o * plane + p];
                    CHECK(dbias_fused[o] == doctest::Approx(sum).epsilon(1e-4));
                }
            }
        }
}

TEST_CASE("an empty batch passes through the convolution kernels without work")
{
    for (const kernels::conv3x3_dims d :
         {kernels::conv3x3_dims{1, 4, 6, 6}, kernels::conv3x3_dims{16, 16, 6, 6}, kernels::conv3x3_dims{3, 5, 5, 7}}) {
        const std::vector<float> weight(d.out_channels * d.patch(), 0.5f), bias(d.out_channels, 0.f);
        std::vector<float> dweight(weight.size(), 1.f), dbias(d.out_channels, 1.f);
        float unused = 0.f;
        kernels::conv3x3_forward(d, 0, &unused, weight.data(), bias.data(),
                                 kernels::conv_output::stored_through_relu(&unused));
        kernels::conv3x3_backward(d, 0, &unused, weight.data(), kernels::conv_output_gradient::of_stored(&unused),
                                  dweight.data(), dbias.data(), nullptr);
        CHECK(std::all_of(dweight.begin(), dweight.end(), [](float v) { return v == 0.f; }));
    }
}

TEST_CASE("convolution backward is the adjoint of forward")
{
    // <dy, conv(x) - b> = <conv^T(dy), x> for the input gradient, and likewise for weights.
    Conv3x3<5, 6>::layer<shape<5, 9, 8>> conv;
    rng random(9);
    conv.initialize(weight_init::xavier_uniform, random);
    tensor<shape<5, 9, 8>> x(3), dx;
    tensor<shape<6, 9, 8>> y, dy(3);
    fill_uniform(x.values(), random);
    fill_uniform(dy.values(), random);
    std::fill(conv.bias.value.begin(), conv.bias.value.end(), 0.f);
    conv.forward(x, y, {});
    conv.backward(x, y, dy, &dx);
    double forward_side = 0, input_side = 0, weight_side = 0;
    for (std::size_t i = 0; i < y.size(); ++i)
        forward_side += double(y.data()[i]) * dy.data()[i];
    for (std::size_t i = 0; i < x.size(); ++i)
        input_side += double(x.data()[i]) * dx.data()[i];
    for (std::size_t i = 0; i < conv.weight.value.size(); ++i)
        weight_side += double(conv.weight.value[i]) * conv.weight.grad[i];
    CHECK(input_side == doctest::Approx(forward_side).epsilon(1e-5));
    CHECK(weight_side == doctest::Approx(forward_side).epsilon(1e-5));
    double bias_grad = 0;
    for (std::size_t i = 0; i < dy.size(); ++i)
        bias_grad += dy.data()[i];
    double bias_side = 0;
    for (float g : conv.bias.grad)
        bias_side += g;
    CHECK(bias_side == doctest::Approx(bias_grad).epsilon(1e-5));
}

TEST_CASE("convolution backward is the adjoint of forward where the input gradient runs over groups of images")
{
    // <dy, conv(x)> = <conv^T(dy), x> = <dW, w>. 128 -> 128 at 28x28: F(2x2) weight gradient, F(4x4) input gradient
    // over groups of 4 images (5 = 4 + 1: the group of one reads its output gradient in place); 120 -> 140 at 14x14:
    // im2col weight gradient, F(2x2) input gradient over groups of 8, with transformed kernels larger than L2.
    struct sizes {
        std::size_t in, out, side, batch;
    };
    for (const auto [in, out, side, batch] : {sizes{128, 128, 28, 5}, sizes{120, 140, 14, 9}}) {
        CAPTURE(in);
        const kernels::conv3x3_dims d{in, out, side, side};
        rng random(in + out);
        std::vector<float> x(batch * d.in_size()), dy(batch * d.out_size()), weight(out * d.patch()), y(dy.size());
        std::vector<float> no_bias(out, 0.f), dx(x.size()), dweight(weight.size()), dbias(out);
        for (auto* values : {&x, &dy, &weight})
            fill_uniform(*values, random);
        kernels::conv3x3_forward(d, batch, x.data(), weight.data(), no_bias.data(),
                                 kernels::conv_output::stored(y.data()));
        kernels::conv3x3_backward(d, batch, x.data(), weight.data(),
                                  kernels::conv_output_gradient::of_stored(dy.data()), dweight.data(), dbias.data(),
                                  dx.data());
        // The sums cancel (hundreds of thousands of terms): errors are measured against the terms' magnitudes.
        double magnitude = 0;
        const auto dot = [&magnitude](const std::vector<float>& a, const std::vector<float>& b) {
            double sum = 0;
            for (std::size_t i = 0; i < a.size(); ++i) {
                sum += double(a[i]) * b[i];
                magnitude += std::abs(double(a[i]) * b[i]);
            }
            return sum;
        };
        const double forward_side = dot(y, dy), input_side = dot(x, dx), weight_side = dot(weight, dweight);
        CHECK(std::abs(input_side - forward_side) < 1e-7 * magnitude);
        CHECK(std::abs(weight_side - forward_side) < 1e-7 * magnitude);
    }
}

TEST_CASE("max-pool routes the gradient to the arg-max only, first maximum on ties")
{
    MaxPool2x2::layer<shape<1, 2, 4>> pool;
    tensor<shape<1, 2, 4>> x(1), dx;
    tensor<shape<1, 1, 2>> y, dy(1);
    // Window one: 1 2 / 3 0, maximum at bottom-left. Window two: all 5, a four-way tie.
    const float values[8] = {1, 2, 5, 5, 3, 0, 5, 5};
    std::copy(values, values + 8, x.data());
    pool.forward(x, y, {});
    CHECK(y(0, 0, 0, 0) == 3.f);
    CHECK(y(0, 0, 0, 1) == 5.f);
    dy(0, 0, 0, 0) = 10.f;
    dy(0, 0, 0, 1) = 20.f;
    pool.backward(x, y, dy, &dx);
    const float expected[8] = {0, 0, 20, 0, 10, 0, 0, 0};
    for (std::size_t i = 0; i < 8; ++i) {
        CAPTURE(i);
        CHECK(dx.data()[i] == expected[i]);
    }
}

TEST_CASE("max-pool's gradient routing gives every input its window's gradient or zero, at every row length")
{
    rng random(41);
    // Rows of 1 to 40 windows: whole SIMD batches of windows and every tail, for any lane count.
    for (std::size_t windows = 1; windows <= 40; ++windows) {
        CAPTURE(windows);
        const std::size_t planes = 2, height = 4, width = 2 * windows, pooled = planes * height / 2 * windows;
        std::vector<float> dy(pooled), dx(planes * height * width, -1.f);
        std::vector<std::uint8_t> argmax(pooled);
        for (std::size_t i = 0; i < pooled; ++i) {
            dy[i] = random.uniform(-1.f, 1.f);
            argmax[i] = static_cast<std::uint8_t>(random.uniform(0.f, 4.f)) % 4;
        }
        kernels::maxpool2x2_planes_backward(0, planes, height, width, dy.data(), argmax.data(), dx.data());
        bool all_right = true;
        for (std::size_t p = 0; p < planes; ++p)
            for (std::size_t y = 0; y < height; ++y)
                for (std::size_t x = 0; x < width; ++x) {
                    const std::size_t window = (p * height / 2 + y / 2) * windows + x / 2;
                    const bool won = argmax[window] == 2 * (y % 2) + x % 2;
                    all_right &= dx[(p * height + y) * width + x] == (won ? dy[window] : 0.f);
                }
        CHECK(all_right);
    }
}

TEST_CASE("SIMD ReLU kernels agree with scalar code on every tail length")
{
    for (std::size_t n = 0; n < 70; ++n) {
        CAPTURE(n);
        rng random(n);
        std::vector<float> x(n), grad(n);
        fill_uniform(x, random);
        fill_uniform(grad, random);
        auto relu = x;
        kernels::relu_inplace(relu.data(), n);
        auto masked = grad;
        kernels::relu_backward_inplace(masked.data(), relu.data(), n);
        for (std::size_t i = 0; i < n; ++i) {
            CHECK(relu[i] == (x[i] > 0 ? x[i] : 0.f));
            CHECK(masked[i] == (x[i] > 0 ? grad[i] : 0.f));
        }
    }
}

TEST_CASE("linear forward and backward equal plain loops, for small batches and by GEMM")
{
    // Batches up to kernels::linear_small_batch take the paths that read the weights in place:
    // the forward pass by rows (one per input that is not zero in every sample; 75 inputs, a fifth
    // of them zero everywhere and a seventh zero in the first sample, leave a partial block of
    // rows), the input gradient by dot products along them (in register blocks of 2 samples: 1
    // and 3 leave partial ones; a single sample reads more features at a time); larger ones gemm().
    constexpr std::size_t in = 75, out = 53;
    for (std::size_t batch : {std::size_t{1}, std::size_t{3}, std::size_t{6}, kernels::linear_small_batch,
                              kernels::linear_small_batch + 1, std::size_t{13}}) {
        CAPTURE(batch);
        Linear<in, out>::layer<shape<in>> linear;
        rng random(4 + batch);
        linear.initialize(weight_init::xavier_uniform, random);
        tensor<shape<in>> x(batch), dx;
        tensor<shape<out>> y, dy(batch);
        fill_uniform(x.values(), random);
        for (std::size_t n = 0; n < batch; ++n)
            for (std::size_t i = 0; i < in; ++i)
                if (i % 5 == 0 || (n == 0 && i % 7 == 0))
                    x(n, i) = 0.f;
        fill_uniform(dy.values(), random);
        linear.forward(x, y, {});
        linear.backward(x, y, dy, &dx);
        const float* w = linear.weight.value.data(); // [in, out]
        for (std::size_t n = 0; n < batch; ++n)
            for (std::size_t o = 0; o < out; ++o) {
                double sum = linear.bias.value[o];
                for (std::size_t i = 0; i < in; ++i)
                    sum += double(x(n, i)) * w[i * out + o];
                CHECK(y(n, o) == doctest::Approx(sum).epsilon(1e-5));
            }
        for (std::size_t o = 0; o < out; ++o)
            for (std::size_t i = 0; i < in; ++i) {
                double sum = 0;
                for (std::size_t n = 0; n < batch; ++n)
                    sum += double(dy(n, o)) * x(n, i);
                CHECK(linear.weight.grad[i * out + o] == doctest::Approx(sum).epsilon(1e-5));
            }
        for (std::size_t n = 0; n < batch; ++n)
            for (std::size_t i = 0; i < in; ++i) {
                double sum = 0;
                for (std::size_t o = 0; o < out; ++o)
                    sum += double(dy(n, o)) * w[i * out + o];
                CHECK(dx(n, i) == doctest::Approx(sum).epsilon(1e-5));
            }
    }
}

TEST_CASE("the small-batch linear forward kernel equals plain loops at the edges of its blocks")
{
    // kernels::linear_forward directly, weight [in, out]: outputs narrower than, equal to and just
    // past a SIMD batch (and a thread's share ending in a partial one), 0 to 17 rows that are not
    // zero (no block, a partial block of kernels::detail::linear_rows_at_a_time, whole blocks with
    // and without a next block to prefetch), batches 1 to kernels::linear_small_batch.
    constexpr std::size_t lanes = kernels::float_batch::size, block = kernels::detail::linear_rows_at_a_time;
    rng random(23);
    for (const std::size_t out : {std::size_t{1}, lanes - 1, lanes, lanes + 1, 2 * lanes + 3})
        for (const std::size_t nonzero_rows : {std::size_t{0}, block - 1, block, block + 1, 2 * block + 1})
            for (const std::size_t batch : {std::size_t{1}, std::size_t{2}, kernels::linear_small_batch}) {
                CAPTURE(out);
                CAPTURE(nonzero_rows);
                CAPTURE(batch);
                const std::size_t in = 2 * nonzero_rows + 3; // every other input zero in every sample
                std::vector<float> x(batch * in, 0.f), weight(in * out), bias(out), y(batch * out, -7.f);
                fill_uniform(weight, random);
                fill_uniform(bias, random);
                for (std::size_t n = 0; n < batch; ++n)
                    for (std::size_t r = 0; r < nonzero_rows; ++r)
                        x[n * in + 2 * r + 1] = n == 0 && r % 3 == 0 ? 0.f : random.uniform(-1.f, 1.f);
                kernels::linear_forward(batch, in, out, x.data(), weight.data(), bias.data(), y.data());
                for (std::size_t n = 0; n < batch; ++n)
                    for (std::size_t o = 0; o < out; ++o) {
                        double sum = bias[o];
                        for (std::size_t i = 0; i < in; ++i)
                            sum += double(x[n * in + i]) * weight[i * out + o];
                        CHECK(y[n * out + o] == doctest::Approx(sum).epsilon(1e-5));
                    }
            }
}

TEST_CASE("a small batch's linear forward does not read the weights of inputs zero in every sample")
{
    // Their rows hold NaN: read, they would turn every output into NaN (0 * NaN).
    constexpr std::size_t in = 40, out = 37;
    Linear<in, out>::layer<shape<in>> linear;
    rng random(21);
    linear.initialize(weight_init::xavier_uniform, random);
    const auto zero_everywhere = [](std::size_t i) { return i % 3 == 1; };
    for (std::size_t i = 0; i < in; ++i)
        if (zero_everywhere(i))
            std::fill_n(&linear.weight.value[i * out], out, std::numeric_limits<float>::quiet_NaN());
    for (std::size_t batch : {std::size_t{1}, std::size_t{4}, kernels::linear_small_batch}) {
        CAPTURE(batch);
        tensor<shape<in>> x(batch);
        fill_uniform(x.values(), random);
        for (std::size_t n = 0; n < batch; ++n)
            for (std::size_t i = 0; i < in; ++i)
                if (zero_everywhere(i))
                    x(n, i) = 0.f;
        tensor<shape<out>> y;
        linear.forward(x, y, {});
        for (std::size_t n = 0; n < batch; ++n)
            for (std::size_t o = 0; o < out; ++o) {
                double sum = linear.bias.value[o];
                for (std::size_t i = 0; i < in; ++i)
                    if (!zero_everywhere(i))
                        sum += double(x(n, i)) * linear.weight.value[i * out + o];
                CHECK(y(n, o) == doctest::Approx(sum).epsilon(1e-5));
            }
    }
}

TEST_CASE("parallel_pieces hands every item to exactly one piece, in pieces of the length asked")
{
    const scoped_threads two(2);
    for (const std::size_t count : {0, 1, 31, 32, 33, 4096, 4100}) {
        CAPTURE(count);
        std::vector<int> times(count, 0);
        std::atomic<std::size_t> wrong_pieces{0};
        // Enough operations an item that two threads take the pieces.
        vgg::detail::parallel_pieces(count, 32, vgg::detail::parallel_min_operations, [&](vgg::detail::range piece) {
            if (piece.begin % 32 != 0 || (piece.size() != 32 && piece.end != count) || piece.size() == 0)
                ++wrong_pieces;
            for (std::size_t i = piece.begin; i < piece.end; ++i)
                ++times[i]; // pieces are disjoint, so no two threads write one element
        });
        CHECK(wrong_pieces == 0);
        CHECK(std::count(times.begin(), times.end(), 1) == static_cast<std::ptrdiff_t>(count));
    }
}

TEST_CASE("a small batch's linear forward gives the same bits split over two threads as on one")
{
    // 301 features: whole SIMD batches and a partial one in the second thread's share; enough
    // operations that two threads split them.
    constexpr std::size_t in = 2000, out = 301;
    Linear<in, out>::layer<shape<in>> linear;
    rng random(12);
    linear.initialize(weight_init::xavier_uniform, random);
    for (const std::size_t batch : {std::size_t{1}, std::size_t{3}}) {
        CAPTURE(batch);
        tensor<shape<in>> x(batch);
        fill_uniform(x.values(), random);
        tensor<shape<out>> on_two, on_one;
        {
            const scoped_threads two(2);
            linear.forward(x, on_two, {});
        }
        {
            const scoped_threads one(1);
            linear.forward(x, on_one, {});
        }
        CHECK(std::equal(on_two.values().begin(), on_two.values().end(), on_one.values().begin()));
        const float* w = linear.weight.value.data(); // [in, out]
        std::size_t wrong = 0;
        for (std::size_t n = 0; n < batch; ++n)
            for (std::size_t o = 0; o < out; ++o) {
                double sum = linear.bias.value[o];
                for (std::size_t i = 0; i < in; ++i)
                    sum += double(x(n, i)) * w[i * out + o];
                wrong += std::abs(on_two(n, o) - sum) > 1e-4 * (1 + std::abs(sum));
            }
        CHECK(wrong == 0);
    }
}

TEST_CASE("linear forward of one sample gives the same sums as that sample in a batch")
{
    // Each sum runs over the weight rows in order; rows read only for the other samples (inputs
    // zero in this one) add exact zeros, so the results are equal to the bit. 53 features leave
    // a partial SIMD batch; 75 inputs, some zero in one sample only, partial blocks of rows.
    constexpr std::size_t in = 75, out = 53, batch = 3;
    Linear<in, out>::layer<shape<in>> linear;
    rng random(11);
    linear.initialize(weight_init::xavier_uniform, random);
    tensor<shape<in>> x(batch);
    fill_uniform(x.values(), random);
    for (std::size_t n = 0; n < batch; ++n)
        for (std::size_t i = n; i < in; i += 4)
            x(n, i) = 0.f;
    tensor<shape<out>> y;
    linear.forward(x, y, {});
    for (std::size_t n = 0; n < batch; ++n) {
        tensor<shape<in>> one(1);
        std::copy_n(&x(n, 0), in, &one(0, 0));
        tensor<shape<out>> alone;
        linear.forward(one, alone, {});
        for (std::size_t o = 0; o < out; ++o)
            CHECK(alone(0, o) == y(n, o));
    }
}

TEST_CASE("linear input gradient of small batches equals plain loops, and any split of the inputs")
{
    // Batches up to kernels::linear_small_batch take dot products along the weight rows of [in,
    // out] (203 features: SIMD batches and a scalar tail), the threads taking pieces of
    // kernels::linear_dot_piece_features inputs (3000: a short last piece); one thread must give
    // the same bits.
    constexpr std::size_t in = 3000, out = 203;
    rng random(17);
    std::vector<float> weight(in * out);
    fill_uniform(weight, random);
    for (std::size_t batch : {std::size_t{1}, std::size_t{5}, kernels::linear_small_batch}) {
        CAPTURE(batch);
        std::vector<float> x(batch * in), dy(batch * out), dweight(in * out), dbias(out), dx(batch * in),
            dx_one_thread(batch * in, -1.f);
        fill_uniform(x, random);
        fill_uniform(dy, random);
        {
            const scoped_threads two(2);
            kernels::linear_backward(batch, in, out, x.data(), dy.data(), weight.data(), dweight.data(), dbias.data(),
                                     dx.data());
        }
        {
            const scoped_threads one(1);
            kernels::linear_backward(batch, in, out, x.data(), dy.data(), weight.data(), dweight.data(), dbias.data(),
                                     dx_one_thread.data());
        }
        CHECK(dx == dx_one_thread);
        const auto check_input = [&](std::size_t n, std::size_t i) {
            double sum = 0;
            for (std::size_t o = 0; o < out; ++o)
                sum += double(dy[n * out + o]) * weight[i * out + o];
            CHECK(dx[n * in + i] == doctest::Approx(sum).epsilon(1e-5));
        };
        for (std::size_t n = 0; n < batch; ++n)
            for (std::size_t i = 0; i < in; i += 7)
                check_input(n, i);
        check_input(batch - 1, in - 1); // in the short last piece
    }
}

TEST_CASE("dropout keeps about 1 - p of the elements, scaled, and is the identity in evaluation")
{
    Dropout<50>::layer<shape<1000>> dropout;
    tensor<shape<1000>> x(8), y;
    std::fill(x.values().begin(), x.values().end(), 1.f);
    dropout.forward(x, y, {mode::train, 3});
    std::size_t kept = 0;
    for (float v : y.values()) {
        CHECK((v == 0.f || v == 2.f));
        kept += v == 2.f;
    }
    CHECK(kept > 3800);
    CHECK(kept < 4200);
    tensor<shape<1000>> again;
    dropout.forward(x, again, {mode::train, 3});
    CHECK(std::equal(y.values().begin(), y.values().end(), again.values().begin()));
    dropout.forward(x, y, {mode::train, 4});
    CHECK_FALSE(std::equal(y.values().begin(), y.values().end(), again.values().begin()));
    dropout.forward(x, y, {mode::eval, 3});
    CHECK(std::all_of(y.values().begin(), y.values().end(), [](float v) { return v == 1.f; }));
}

TEST_CASE_TEMPLATE("a block's fused convolution + ReLU + max-pool equals the separate layers", Case,
                   conv_case<1, 16, 12, 10>, conv_case<8, 4, 6, 6>, conv_case<16, 16, 8, 72>, conv_case<16, 16, 6, 10>)
{
    constexpr std::size_t in = Case::in, out = Case::out, h = Case::height, w = Case::width;
    typename VGGBlock<1, in, out>::template layer<shape<in, h, w>> block;
    typename Conv3x3<in, out>::template layer<shape<in, h, w>> conv;
    relu_layer<shape<out, h, w>> relu;
    MaxPool2x2::layer<shape<out, h, w>> pool;
    rng random(11);
    block.initialize(weight_init::xavier_uniform, random);
    conv.weight.value = block.first.weight.value;
    conv.bias.value = block.first.bias.value;
    tensor<shape<in, h, w>> x(3), dx_fused, dx_separate;
    fill_uniform(x.values(), random);
    tensor<shape<out, h / 2, w / 2>> y_fused, y_separate, dy(3);
    tensor<shape<out, h, w>> conv_out, relu_out, d_relu_out, d_conv_out;
    fill_uniform(dy.values(), random);

    block.forward(x, y_fused, {});
    conv.forward(x, conv_out, {});
    relu.forward(conv_out, relu_out, {});
    pool.forward(relu_out, y_separate, {});
    CHECK(max_abs_difference(y_fused.values(), y_separate.values()) < 1e-5f);

    block.backward(x, y_fused, dy, &dx_fused);
    pool.backward(relu_out, y_separate, dy, &d_relu_out);
    relu.backward(conv_out, relu_out, d_relu_out, &d_conv_out);
    conv.backward(x, conv_out, d_conv_out, &dx_separate);
    CHECK(max_abs_difference(dx_fused.values(), dx_separate.values()) < 1e-5f);
    CHECK(max_abs_difference(block.first.weight.grad, conv.weight.grad) < 1e-4f);
    CHECK(max_abs_difference(block.first.bias.grad, conv.bias.grad) < 1e-4f);
}
