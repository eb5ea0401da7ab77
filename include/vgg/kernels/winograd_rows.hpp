#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "vgg/kernels/maxpool.hpp"
#include "vgg/kernels/simd.hpp"

// Image rows into and out of the Winograd drivers' layout, where a SIMD batch holds one value of
// consecutive tiles (tile tx's pixel j of a row is pixel Tile * tx + j of the image row): columns
// of windows are gathered by deinterleave, tile outputs stored or pooled by interleave, a batch of
// tiles at a time.
namespace vgg::kernels {
VGG_UNDEFINED_VECTOR_WARNINGS_OFF

/// f.template operator()<Tile>() for a tile side known only at run time (4 or 2), so that the
/// drivers see it as a constant.
template <class F>
decltype(auto) with_winograd_tile(std::size_t tile, F&& f)
{
    return tile == 4 ? f.template operator()<4>() : f.template operator()<2>();
}

/// The outputs of one tile row: batch(i, j, tx) holds output pixels (tile * tile_row + i,
/// tile * (tx + lane) + j). Each row of `data` (stride apart) has room for a whole SIMD batch past
/// its last tile.
struct tile_row_outputs {
    const float* data;
    std::size_t stride, tile;
    float_batch batch(std::size_t i, std::size_t j, std::size_t tx) const
    {
        return float_batch::load_unaligned(data + (tile * i + j) * stride + tx);
    }
};

namespace detail {

/// `values` moved up one lane, `first` in lane 0.
inline float_batch shift_in_first(const float_batch& values, float first)
{
    struct previous_lane {
        static constexpr std::uint32_t get(std::uint32_t lane, std::uint32_t lanes)
        {
            return (lane + lanes - 1) % lanes;
        }
    };
    struct first_lane {
        static constexpr bool get(std::size_t lane, std::size_t) { return lane == 0; }
    };
    return select_lanes<first_lane>(
        float_batch(first),
        xsimd::swizzle(values, xsimd::make_batch_constant<xsimd::batch<std::uint32_t>, previous_lane>()));
}

/// `values` moved down one lane, `last` in the last lane.
inline float_batch shift_in_last(const float_batch& values, float last)
{
    struct next_lane {
        static constexpr std::uint32_t get(std::uint32_t lane, std::uint32_t lanes) { return (lane + 1) % lanes; }
    };
    struct last_lane {
        static constexpr bool get(std::size_t lane, std::size_t lanes) { return lane + 1 == lanes; }
    };
    return select_lanes<last_lane>(
        float_batch(last),
        xsimd::swizzle(values, xsimd::make_batch_constant<xsimd::batch<std::uint32_t>, next_lane>()));
}

} // namespace detail

/// Columns 0 .. Tile + 1 of the input windows of one image row's tiles: window column j of tile
/// tx is source[Tile * tx + j - 1], zero past either end of the row; column j goes to
/// columns[j * stride + tx] for tx < tiles_x. Writes whole batches, so up to a batch past tiles_x
/// (the caller leaves room; a next tile row's gather overwrites it); reads whole batches too,
/// but none past `readable_end`.
template <std::size_t Tile>
void gather_window_columns(const float* source, std::size_t tiles_x, const float* readable_end, float* columns,
                           std::size_t stride)
{
    constexpr std::size_t lanes = float_batch::size;
    for (std::size_t tx = 0; tx < tiles_x; tx += lanes) {
        const float* from = source + Tile * tx;
        const auto readable = static_cast<std::size_t>(std::min<std::ptrdiff_t>(Tile * lanes, readable_end - from));
        float_batch pixels[Tile], middle[Tile];
        VGG_UNROLL
        for (std::size_t i = 0; i < Tile; ++i)
            pixels[i] = i * lanes < readable ? load_first(from + i * lanes, readable - i * lanes) : float_batch(0.f);
        deinterleave(pixels, middle);
        VGG_UNROLL
        for (std::size_t j = 1; j <= Tile; ++j)
            middle[j - 1].store_unaligned(columns + j * stride + tx);
        // Column 0 is column Tile of the tile to the left, column Tile + 1 column 1 of the tile to the right.
        detail::shift_in_first(middle[Tile - 1], tx == 0 ? 0.f : source[Tile * tx - 1]).store_unaligned(columns + tx);
        detail::shift_in_last(middle[0], tx + lanes < tiles_x ? source[Tile * (tx + lanes)] : 0.f)
            .store_unaligned(columns + (Tile + 1) * stride + tx);
    }
    columns[(Tile + 1) * stride + tiles_x - 1] = 0.f;
}

/// Writes one tile row of Winograd outputs into the `outputs.tile` rows from `plane_row` on,
/// optionally through ReLU.
inline void store_tile_row(const tile_row_outputs& outputs, std::size_t width, float* plane_row, bool relu)
{
    with_winograd_tile(outputs.tile, [&]<std::size_t Tile>() {
        constexpr std::size_t lanes = float_batch::size;
        const std::size_t tiles_x = width / Tile;
        const float_batch zero(0.f);
        VGG_UNROLL
        for (std::size_t i = 0; i < Tile; ++i)
            for (std::size_t tx = 0; tx < tiles_x; tx += lanes) {
                float_batch tile_columns[Tile], pixels[Tile];
                VGG_UNROLL
                for (std::size_t j = 0; j < Tile; ++j) {
                    const float_batch v = outputs.batch(i, j, tx);
                    tile_columns[j] = relu ? xsimd::select(v < zero, zero, v) : v; // std::max(v, 0.f), NaN kept
                }
                interleave(tile_columns, pixels);
                const std::size_t count = Tile * std::min(lanes, tiles_x - tx);
                for (std::size_t b = 0; b * lanes < count; ++b)
                    store_first(pixels[b], plane_row + i * width + Tile * tx + b * lanes, count - b * lanes);
            }
    });
}

/// 2x2 max-pools one tile row of Winograd outputs (a tile is one pooling window, or four whole
/// ones) into the rows from `pooled_row` on (width / 2 apart) with their arg-max, then ReLU: as
/// maxpool2x2_planes and ReLU on the stored outputs would, bit for bit.
inline void pool_tile_row(const tile_row_outputs& outputs, std::size_t width, float* pooled_row,
                          std::uint8_t* argmax_row)
{
    with_winograd_tile(outputs.tile, [&]<std::size_t Tile>() {
        constexpr std::size_t lanes = float_batch::size, windows = Tile / 2;
        const std::size_t tiles_x = width / Tile, pooled_width = width / 2;
        const float_batch zero(0.f);
        for (std::size_t wy = 0; wy < windows; ++wy)
            for (std::size_t tx = 0; tx < tiles_x; tx += lanes) {
                float_batch best[windows], winner[windows], pooled[windows], winners[windows];
                const std::size_t i = 2 * wy;
                for (std::size_t wx = 0; wx < windows; ++wx) {
                    const std::size_t j = 2 * wx;
                    best[wx] = max_of_windows(outputs.batch(i, j, tx), outputs.batch(i, j + 1, tx),
                                              outputs.batch(i + 1, j, tx), outputs.batch(i + 1, j + 1, tx), winner[wx]);
                    best[wx] = xsimd::select(best[wx] < zero, zero, best[wx]); // std::max(best, 0.f)
                }
                if constexpr (windows == 1) {
                    pooled[0] = best[0];
                    winners[0] = winner[0];
                } else {
                    interleave(best, pooled);
                    interleave(winner, winners);
                }
                const std::size_t count = windows * std::min(lanes, tiles_x - tx);
                const std::size_t at = wy * pooled_width + windows * tx;
                for (std::size_t b = 0; b * lanes < count; ++b) {
                    store_first(pooled[b], pooled_row + at + b * lanes, count - b * lanes);
                    detail::store_winners(winners[b], argmax_row + at + b * lanes, count - b * lanes);
                }
            }
    });
}

VGG_UNDEFINED_VECTOR_WARNINGS_ON
} // namespace vgg::kernels
