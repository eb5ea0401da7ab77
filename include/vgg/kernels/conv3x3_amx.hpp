#pragma once
// A 3x3 convolution on AMX tiles read straight from a channels-last bf16 copy of the image, the
// layout oneDNN's AMX convolutions use. In that copy, a kernel row ky of an output pixel reads one
// run of 3 x channels values (pixels x - 1 .. x + 1, all channels), and the runs of 16 neighbouring
// pixels lie one pixel's channels apart: a tile load with that row stride is the A tile of 16
// pixels x 32 values of the run, so no column matrix is built or packed. The weights are packed
// once per call as B tiles; each C tile is 16 pixels x 16 output channels, transposed in
// registers into the output's channel planes. Output channels come in groups of 16; any number of
// input channels is read (one, for a grey image, reads 32 pixels of one row per tile row, of which
// the 3 a kernel row needs have weights). The weight gradient (below) needs multiples of 16 on
// both sides.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>

#include "vgg/detail/parallel.hpp"
#include "vgg/kernels/conv/epilogue.hpp"
#include "vgg/kernels/gemm_bf16.hpp"

namespace vgg::kernels {

/// Whether amx_conv3x3_image runs a convolution to this many output channels on this CPU.
inline bool amx_conv3x3_runs(std::size_t out_channels)
{
    return out_channels % bf16_panel == 0 && bf16_kernel_runs(bf16_kernel::amx);
}

/// Whether amx_accumulate_weight_gradient runs a convolution with these channel counts on this CPU.
inline bool amx_weight_gradient_runs(std::size_t in_channels, std::size_t out_channels)
{
    return in_channels % bf16_panel == 0 && amx_conv3x3_runs(out_channels);
}

/// Sizes of one image's convolution and of its channels-last copy ("staged"): rows -1 .. height,
/// columns -1 .. staged_width() - 2, channels innermost, zero outside the image. Output rows are
/// cut into blocks of 16 pixels; a tile row reads the run of 3 x in_channels values rounded up to
/// whole depth steps (4 pixels with 16 channels, 32 with one), hence the zero columns on the right.
struct amx_conv3x3_layout {
    std::size_t in_channels, out_channels, height, width;

    std::size_t pixel_blocks() const { return (width + bf16_panel - 1) / bf16_panel; }
    std::size_t staged_width() const
    {
        const std::size_t pixels_read = (depth_steps() * bf16_depth_step + in_channels - 1) / in_channels;
        return pixel_blocks() * bf16_panel + pixels_read;
    }
    std::size_t staged_size() const { return (height + 2) * staged_width() * in_channels; }
    /// Depth steps (32 values) of one kernel row's run of 3 x in_channels values.
    std::size_t depth_steps() const { return (3 * in_channels + bf16_depth_step - 1) / bf16_depth_step; }
    std::size_t output_groups() const { return out_channels / bf16_panel; }
    std::size_t packed_weights_size() const { return 3 * depth_steps() * out_channels * bf16_depth_step; }
};

/// Sizes of one image's weight gradient on AMX, dW[o][c][ky][kx] = sum over pixels p of
/// g[o][p] x[c][p shifted by (ky - 1, kx - 1)], as dW^T tiles (16 channels x 16 outputs per tap)
/// whose depth is pixels: the A tile is 16 channels x 32 pixels of one row of a bf16 copy of x
/// with a zero border ("the image copy", channel planes of height + 2 rows of row_width()), read
/// at the tap's shift; the B tile is 16 pairs of pixels x 16 outputs of a copy of g in pixel pairs
/// ("the gradient copy", [row][pair][output][2]). Rows are cut into blocks of 32 pixels, the
/// gradient zero past the image's width.
struct amx_weight_gradient_layout {
    std::size_t in_channels, out_channels, height, width;

    std::size_t padded_width() const { return (width + 2 * bf16_panel - 1) / (2 * bf16_panel) * 2 * bf16_panel; }
    std::size_t row_width() const { return padded_width() + 2; }
    std::size_t image_plane() const { return (height + 2) * row_width(); }
    std::size_t image_size() const { return in_channels * image_plane(); }
    std::size_t gradient_size() const { return height * padded_width() * out_channels; }
    /// Floats of the dW^T sums, [tap][in][out].
    std::size_t sums_size() const { return 9 * in_channels * out_channels; }
};

/// Packs weight [out][in][3][3] as B tiles, one per kernel row ky, depth step s and group of 16
/// output channels, at ((ky * depth_steps + s) * output_groups + group) * bf16_block: 16 pairs of
/// run values x 16 outputs x 2, where run value k is channel k % in of kernel column k / in (zero
/// past the run's end).
inline void pack_amx_conv3x3_weights(const amx_conv3x3_layout& l, const float* weight, std::uint16_t* packed)
{
    const std::size_t in = l.in_channels, steps = l.depth_steps(), groups = l.output_groups();
    for (std::size_t ky = 0; ky < 3; ++ky)
        for (std::size_t s = 0; s < steps; ++s)
            for (std::size_t group = 0; group < groups; ++group) {
                std::uint16_t* tile = packed + ((ky * steps + s) * groups + group) * bf16_block;
                for (std::size_t value = 0; value < bf16_depth_step; ++value) {
                    const std::size_t k = s * bf16_depth_step + value, kx = k / in, c = k % in;
                    for (std::size_t o = 0; o < bf16_panel; ++o) {
                        const std::size_t out = group * bf16_panel + o;
                        tile[(value / 2 * bf16_panel + o) * 2 + value % 2] =
                            kx < 3 ? to_bf16(weight[(out * in + c) * 9 + ky * 3 + kx]) : std::uint16_t{0};
                    }
                }
            }
}

#if defined(__x86_64__)
namespace detail {

/// target[i] = source[i] rounded to bf16, for i < count.
VGG_TARGET_AVX512_BF16 inline void convert_to_bf16(const float* source, std::size_t count, std::uint16_t* target)
{
    for (std::size_t i = 0; i < count; i += bf16_panel) {
        const __mmask16 lanes = first_lanes(count - i);
        _mm256_mask_storeu_epi16(target + i, lanes,
                                 (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(lanes, source + i)));
    }
}

/// Stores the first `count` of 16 transposed pixels ([pixel][16 channels]) into a channels-last
/// row, rounded to bf16: pixel j's 16 channels at target + j * channels.
VGG_TARGET_AVX512_BF16 inline void store_pixels_bf16(const __m512i pixels[16], std::size_t count, std::size_t channels,
                                                     std::uint16_t* target)
{
    for (std::size_t j = 0; j < count; ++j)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(target + j * channels),
                            (__m256i)_mm512_cvtneps_pbh(_mm512_castsi512_ps(pixels[j])));
}

/// Zeros the staged copy's border: the rows above and below the image, the column left of it
/// and the columns right of it.
inline void zero_staged_border(const amx_conv3x3_layout& l, std::uint16_t* staged)
{
    const std::size_t in = l.in_channels, width = l.staged_width();
    std::fill(staged, staged + width * in, std::uint16_t{0});
    std::fill(staged + (l.height + 1) * width * in, staged + (l.height + 2) * width * in, std::uint16_t{0});
    for (std::size_t y = 0; y < l.height; ++y) {
        std::uint16_t* row = staged + (y + 1) * width * in;
        std::fill(row, row + in, std::uint16_t{0});
        std::fill(row + (l.width + 1) * in, row + width * in, std::uint16_t{0});
    }
}

/// 16 rows of 16 floats, `stride` floats apart, the lanes outside `lanes` zero, transposed into r:
/// r[j] holds lane j of every row.
VGG_TARGET_AVX512_BF16 inline void load_transposed_16x16(const float* first, std::size_t stride, __mmask16 lanes,
                                                         __m512i r[16])
{
    for (std::size_t i = 0; i < 16; ++i)
        r[i] = _mm512_castps_si512(_mm512_maskz_loadu_ps(lanes, first + i * stride));
    transpose_16x16(r);
}

/// AMX: C tiles 0-3 = rows y and y + 1 (TwoRows) x groups g and g + 1 (TwoGroups) of one block of
/// 16 pixels; `a` points at the block's first pixel in staged row y - 1, `b` at group g's tiles.
template <bool TwoRows, bool TwoGroups>
VGG_TARGET_AMX void amx_conv3x3_block(const amx_conv3x3_layout& l, const std::uint16_t* a, const std::uint16_t* b,
                                      float (*c)[bf16_panel * bf16_panel])
{
    const std::size_t pixel_bytes = l.in_channels * sizeof(std::uint16_t),
                      staged_row = l.staged_width() * l.in_channels;
    const std::size_t steps = l.depth_steps(), groups = l.output_groups();
    constexpr std::size_t row_bytes = 64, result_row_bytes = bf16_panel * sizeof(float);
    zero_accumulators();
    for (std::size_t ky = 0; ky < 3; ++ky)
        for (std::size_t s = 0; s < steps; ++s) {
            const std::uint16_t* a0 = a + ky * staged_row + s * bf16_depth_step;
            const std::uint16_t* b0 = b + (ky * steps + s) * groups * bf16_block;
            multiply_tiles<TwoRows, TwoGroups>(a0, TwoRows ? a0 + staged_row : a0, pixel_bytes, b0,
                                               TwoGroups ? b0 + bf16_block : b0, row_bytes);
        }
    store_accumulators<TwoRows, TwoGroups>(
        {{c[0], c[1], c[2], c[3]}, {result_row_bytes, result_row_bytes, result_row_bytes, result_row_bytes}});
}

/// AMX: dW^T tiles 0-3 = channel groups c and c + 1 (TwoChannelGroups) x output groups o and o + 1
/// (TwoOutputGroups) of one tap, summed over an image's pixels onto `sums`; `a` points at channel
/// group c's plane in the image copy, shifted by the tap, `b` at output group o in the gradient copy.
template <bool TwoChannelGroups, bool TwoOutputGroups>
VGG_TARGET_AMX void amx_weight_gradient_block(const amx_weight_gradient_layout& l, const std::uint16_t* a,
                                              const std::uint16_t* b, float* sums)
{
    const std::size_t out = l.out_channels, plane = l.image_plane(), pairs = l.padded_width() / 2;
    const std::size_t plane_bytes = plane * sizeof(std::uint16_t), pair_row_bytes = 2 * out * sizeof(std::uint16_t);
    const std::size_t sums_stride = out * sizeof(float), next_channels = bf16_panel * out;
    const accumulator_tiles tiles{{sums, sums + bf16_panel, sums + next_channels, sums + next_channels + bf16_panel},
                                  {sums_stride, sums_stride, sums_stride, sums_stride}};
    load_accumulators<TwoChannelGroups, TwoOutputGroups>(tiles);
    for (std::size_t y = 0; y < l.height; ++y)
        for (std::size_t x0 = 0; x0 < l.padded_width(); x0 += 2 * bf16_panel) {
            const std::uint16_t* a0 = a + y * l.row_width() + x0;
            const std::uint16_t* b0 = b + (y * pairs + x0 / 2) * 2 * out;
            multiply_tiles<TwoChannelGroups, TwoOutputGroups>(
                a0, TwoChannelGroups ? a0 + bf16_panel * plane : a0, plane_bytes, b0,
                TwoOutputGroups ? b0 + 2 * bf16_panel : b0, pair_row_bytes);
        }
    store_accumulators<TwoChannelGroups, TwoOutputGroups>(tiles);
}

} // namespace detail

/// Writes image (in_channels planes of height x width floats) as the staged copy (see
/// amx_conv3x3_layout), rounded to bf16: blocks of 16 channels x 16 pixels are transposed in
/// registers; other channel counts (the first layer's 1 or 3) go value by value.
VGG_TARGET_AVX512_BF16 inline void stage_channels_last(const amx_conv3x3_layout& l, const float* image,
                                                       std::uint16_t* staged)
{
    const std::size_t in = l.in_channels, width = l.staged_width(), plane = l.height * l.width;
    detail::zero_staged_border(l, staged);
    for (std::size_t y = 0; y < l.height; ++y) {
        std::uint16_t* row = staged + (y + 1) * width * in;
        if (in == 1) { // a grey image: its rows as they are
            detail::convert_to_bf16(image + y * l.width, l.width, row + 1);
            continue;
        }
        if (in % bf16_panel != 0) {
            for (std::size_t x = 0; x < l.width; ++x)
                for (std::size_t c = 0; c < in; ++c)
                    row[(x + 1) * in + c] = to_bf16(image[c * plane + y * l.width + x]);
            continue;
        }
        for (std::size_t x0 = 0; x0 < l.width; x0 += bf16_panel) {
            const std::size_t count = std::min(bf16_panel, l.width - x0);
            const __mmask16 lanes = detail::first_lanes(count);
            for (std::size_t c0 = 0; c0 < in; c0 += bf16_panel) {
                __m512i pixels[16]; // [pixel][channel]
                detail::load_transposed_16x16(image + c0 * plane + y * l.width + x0, plane, lanes, pixels);
                detail::store_pixels_bf16(pixels, count, in, row + (x0 + 1) * in + c0);
            }
        }
    }
}

/// Writes image (in_channels planes of height x width floats) as the weight gradient's image
/// copy, rounded to bf16.
VGG_TARGET_AVX512_BF16 inline void stage_image_planes(const amx_weight_gradient_layout& l, const float* image,
                                                      std::uint16_t* staged)
{
    const std::size_t width = l.row_width();
    for (std::size_t c = 0; c < l.in_channels; ++c) {
        std::uint16_t* plane = staged + c * l.image_plane();
        std::fill(plane, plane + width, std::uint16_t{0});
        std::fill(plane + (l.height + 1) * width, plane + (l.height + 2) * width, std::uint16_t{0});
        for (std::size_t y = 0; y < l.height; ++y) {
            std::uint16_t* row = plane + (y + 1) * width;
            const float* source = image + (c * l.height + y) * l.width;
            row[0] = 0;
            std::fill(row + l.width + 1, row + width, std::uint16_t{0});
            detail::convert_to_bf16(source, l.width, row + 1);
        }
    }
}

/// One pass over an output gradient g (out_channels planes of height x width floats), in blocks
/// of 16 outputs x 16 pixels transposed in registers: writes the weight gradient's gradient copy
/// (`pairs`, neighbouring pixels interleaved), if `channels_last` is not null the staged copy the
/// input gradient's convolution reads (amx_conv3x3_layout{out_channels, in_channels, ...}), and
/// adds each output's sum over the pixels to bias_gradient.
VGG_TARGET_AVX512_BF16 inline void stage_gradient(const amx_weight_gradient_layout& l, const float* g,
                                                  std::uint16_t* pairs, std::uint16_t* channels_last,
                                                  float* bias_gradient)
{
    const amx_conv3x3_layout adjoint{l.out_channels, l.in_channels, l.height, l.width};
    const std::size_t out = l.out_channels, plane = l.height * l.width;
    if (channels_last)
        detail::zero_staged_border(adjoint, channels_last);
    for (std::size_t y = 0; y < l.height; ++y)
        for (std::size_t x0 = 0; x0 < l.padded_width(); x0 += bf16_panel) {
            const std::size_t count = x0 < l.width ? std::min(bf16_panel, l.width - x0) : 0;
            const __mmask16 lanes = detail::first_lanes(count);
            for (std::size_t o0 = 0; o0 < out; o0 += bf16_panel) {
                __m512i pixels[16]; // [pixel][output]
                detail::load_transposed_16x16(g + o0 * plane + y * l.width + x0, plane, lanes, pixels);
                __m512 sums = _mm512_loadu_ps(bias_gradient + o0);
                for (std::size_t pair = 0; pair < bf16_panel / 2; ++pair) {
                    const __m512 even = _mm512_castsi512_ps(pixels[2 * pair]),
                                 odd = _mm512_castsi512_ps(pixels[2 * pair + 1]);
                    _mm512_storeu_si512(pairs + ((y * l.padded_width() + x0) / 2 + pair) * 2 * out + 2 * o0,
                                        detail::to_bf16_pairs(even, odd));
                    sums = _mm512_add_ps(sums, _mm512_add_ps(even, odd));
                }
                _mm512_storeu_ps(bias_gradient + o0, sums);
                if (!channels_last)
                    continue;
                std::uint16_t* row = channels_last + (y + 1) * adjoint.staged_width() * out;
                detail::store_pixels_bf16(pixels, count, out, row + (x0 + 1) * out + o0);
            }
        }
}

namespace detail {

/// Writes the transposed C tile `channels` ([channel][pixel], 16 x 16 pixels from x0 of row y)
/// into the planes, adding the bias, through ReLU if asked.
VGG_TARGET_AVX512_BF16 inline void store_output_rows(const amx_conv3x3_layout& l, const conv_output& output,
                                                     const float* bias, std::size_t first_channel, std::size_t y,
                                                     std::size_t x0, const __m512i channels[16])
{
    const __mmask16 lanes = first_lanes(l.width - x0);
    for (std::size_t o = 0; o < bf16_panel; ++o) {
        const std::size_t channel = first_channel + o;
        __m512 values = _mm512_castsi512_ps(channels[o]);
        if (bias)
            values = _mm512_add_ps(values, _mm512_set1_ps(bias[channel]));
        if (output.relu) // v < 0 ? 0 : v, NaN kept, as relu_inplace
            values = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(values, _mm512_setzero_ps(), _CMP_NLT_UQ), values);
        _mm512_mask_storeu_ps(output.planes + (channel * l.height + y) * l.width + x0, lanes, values);
    }
}

VGG_UNDEFINED_VECTOR_WARNINGS_OFF
/// Pools two transposed C tiles, rows y and y + 1 of the same 16 channels and pixels from x0, into
/// relu(maxpool2x2) and its arg-max, exactly as maxpool2x2_planes and relu_inplace would.
VGG_TARGET_AVX512_BF16 inline void store_pooled_rows(const amx_conv3x3_layout& l, const conv_output& output,
                                                     const float* bias, std::size_t first_channel, std::size_t y,
                                                     std::size_t x0, const __m512i top[16], const __m512i bottom[16])
{
    // Lanes 0-7: the windows' left (right) values in the top row; lanes 8-15: in the bottom row.
    const __m512i left_index = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i right_index = _mm512_add_epi32(left_index, _mm512_set1_epi32(1));
    const __m512i upper_half = _mm512_set_epi32(7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8);
    const __m512i one = _mm512_set1_epi32(1), two = _mm512_set1_epi32(2);
    const std::size_t pooled_width = l.width / 2, pooled_height = l.height / 2;
    const __mmask16 windows = first_lanes((l.width - x0) / 2);
    for (std::size_t o = 0; o < bf16_panel; ++o) {
        const std::size_t channel = first_channel + o;
        const __m512 b = _mm512_set1_ps(bias ? bias[channel] : 0.f);
        const __m512 upper = _mm512_add_ps(_mm512_castsi512_ps(top[o]), b);
        const __m512 lower = _mm512_add_ps(_mm512_castsi512_ps(bottom[o]), b);
        const __m512 left = _mm512_permutex2var_ps(upper, left_index, lower);
        const __m512 right = _mm512_permutex2var_ps(upper, right_index, lower);
        // The first maximum wins, as in max_of_window: the later value only when strictly larger.
        const __mmask16 right_wins = _mm512_cmp_ps_mask(right, left, _CMP_GT_OQ);
        const __m512 row_max = _mm512_mask_blend_ps(right_wins, left, right);
        const __m512 bottom_max = _mm512_permutexvar_ps(upper_half, row_max);
        const __mmask16 bottom_wins = _mm512_cmp_ps_mask(bottom_max, row_max, _CMP_GT_OQ) & 0xff;
        __m512 best = _mm512_mask_blend_ps(bottom_wins, row_max, bottom_max);
        best = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(best, _mm512_setzero_ps(), _CMP_GT_OQ), best);
        const __m512i right_bottom = _mm512_add_epi32(two, _mm512_maskz_mov_epi32(right_wins >> 8, one));
        const __m512i winner =
            _mm512_mask_mov_epi32(_mm512_maskz_mov_epi32(right_wins & 0xff, one), bottom_wins, right_bottom);
        const std::size_t at = (channel * pooled_height + y / 2) * pooled_width + x0 / 2;
        _mm512_mask_storeu_ps(output.pooled + at, windows, best);
        _mm512_mask_cvtepi32_storeu_epi8(output.argmax + at, windows, winner);
    }
}

VGG_UNDEFINED_VECTOR_WARNINGS_ON

} // namespace detail

/// conv3x3(image) + bias (no bias if null) for the output channels of `groups` (groups of 16),
/// from the staged image and the packed weights, written as `output` says.
VGG_TARGET_AMX inline void amx_conv3x3_image(const amx_conv3x3_layout& l, const std::uint16_t* staged,
                                             const std::uint16_t* packed_weights, const float* bias,
                                             vgg::detail::range groups, const conv_output& output)
{
    const detail::tile_configuration configuration;
    _tile_loadconfig(&configuration);
    const std::size_t in = l.in_channels, staged_row = l.staged_width() * in;
    alignas(64) float results[4][bf16_panel * bf16_panel];
    for (std::size_t g = groups.begin; g < groups.end; g += 2) {
        const bool two_groups = g + 1 < groups.end;
        const std::uint16_t* b = packed_weights + g * bf16_block;
        for (std::size_t y = 0; y < l.height; y += 2) {
            const bool two_rows = y + 1 < l.height;
            for (std::size_t x0 = 0; x0 < l.width; x0 += bf16_panel) {
                const std::uint16_t* a = staged + y * staged_row + x0 * in;
                detail::with_tile_flags(two_rows, two_groups, [&]<bool TwoRows, bool TwoGroups>() {
                    detail::amx_conv3x3_block<TwoRows, TwoGroups>(l, a, b, results);
                });
                for (std::size_t t = 0; t < 2; ++t) { // tile t: group g + t, row y; tile t + 2: row y + 1
                    if (t == 1 && !two_groups)
                        continue;
                    // [channel][pixel]; the rows of pixels past the image's width are not stored.
                    __m512i top[16], bottom[16];
                    detail::load_transposed_16x16(results[t], bf16_panel, 0xffff, top);
                    if (two_rows)
                        detail::load_transposed_16x16(results[t + 2], bf16_panel, 0xffff, bottom);
                    const std::size_t first_channel = (g + t) * bf16_panel;
                    if (output.pooled) {
                        detail::store_pooled_rows(l, output, bias, first_channel, y, x0, top, bottom);
                        continue;
                    }
                    detail::store_output_rows(l, output, bias, first_channel, y, x0, top);
                    if (two_rows)
                        detail::store_output_rows(l, output, bias, first_channel, y + 1, x0, bottom);
                }
            }
        }
    }
    _tile_release();
}

/// sums[tap][c][o] += dW^T of one image, from its image copy and gradient copy.
VGG_TARGET_AMX inline void amx_accumulate_weight_gradient(const amx_weight_gradient_layout& l,
                                                          const std::uint16_t* image, const std::uint16_t* gradient,
                                                          float* sums)
{
    const detail::tile_configuration configuration;
    _tile_loadconfig(&configuration);
    const std::size_t channel_groups = l.in_channels / bf16_panel, output_groups = l.out_channels / bf16_panel;
    for (std::size_t tap = 0; tap < 9; ++tap)
        for (std::size_t cg = 0; cg < channel_groups; cg += 2)
            for (std::size_t og = 0; og < output_groups; og += 2) {
                const std::uint16_t* a = image + cg * bf16_panel * l.image_plane() + tap / 3 * l.row_width() + tap % 3;
                const std::uint16_t* b = gradient + og * 2 * bf16_panel;
                float* c = sums + (tap * l.in_channels + cg * bf16_panel) * l.out_channels + og * bf16_panel;
                detail::with_tile_flags(cg + 1 < channel_groups, og + 1 < output_groups,
                                        [&]<bool TwoChannelGroups, bool TwoOutputGroups>() {
                                            detail::amx_weight_gradient_block<TwoChannelGroups, TwoOutputGroups>(l, a,
                                                                                                                 b, c);
                                        });
            }
    _tile_release();
}
#else
// Only x86-64 CPUs have AMX: amx_conv3x3_runs() is false elsewhere, and these are never reached.
inline void stage_channels_last(const amx_conv3x3_layout&, const float*, std::uint16_t*)
{
    throw std::logic_error("stage_channels_last needs an x86-64 CPU with AVX512_BF16");
}
inline void amx_conv3x3_image(const amx_conv3x3_layout&, const std::uint16_t*, const std::uint16_t*, const float*,
                              vgg::detail::range, const conv_output&)
{
    throw std::logic_error("amx_conv3x3_image needs an x86-64 CPU with AMX");
}
inline void stage_image_planes(const amx_weight_gradient_layout&, const float*, std::uint16_t*)
{
    throw std::logic_error("stage_image_planes needs an x86-64 CPU with AVX512_BF16");
}
inline void stage_gradient(const amx_weight_gradient_layout&, const float*, std::uint16_t*, std::uint16_t*, float*)
{
    throw std::logic_error("stage_gradient needs an x86-64 CPU with AVX512_BF16");
}
inline void amx_accumulate_weight_gradient(const amx_weight_gradient_layout&, const std::uint16_t*,
                                           const std::uint16_t*, float*)
{
    throw std::logic_error("amx_accumulate_weight_gradient needs an x86-64 CPU with AMX");
}
#endif

/// dweight[o][c][tap] += sums[tap][c][o] (the dW^T sums of amx_accumulate_weight_gradient).
inline void add_weight_gradient_sums(const amx_weight_gradient_layout& l, const float* sums, float* dweight)
{
    const std::size_t in = l.in_channels, out = l.out_channels;
    for (std::size_t o = 0; o < out; ++o)
        for (std::size_t c = 0; c < in; ++c)
            for (std::size_t tap = 0; tap < 9; ++tap)
                dweight[(o * in + c) * 9 + tap] += sums[(tap * in + c) * out + o];
}

} // namespace vgg::kernels
