#pragma once
// Covers a run of output pixels x output channels with one instruction set's tiles: its widest
// tile where it fits, narrower ones at the edges.
#include <algorithm>
#include <cstddef>
#include <utility>

#include "vgg/kernels/cpu_features.hpp"
#include "vgg/kernels/int8/tiles.hpp"

namespace vgg::kernels::int8 {

namespace detail {
template <class Tiles, std::size_t Blocks, std::size_t... P>
void tile_of_width(std::size_t pixels, const tile_source& s, const tile_output& out, std::index_sequence<P...>)
{
    ((pixels == P + 1 ? Tiles::template tile<P + 1, Blocks>(s, out) : void()), ...);
}
} // namespace detail

/// Every tile of `pixels` outputs (source and output pixel strides apart) x blocks [first, last)
/// of the weights; out.channels of each output are written (all the padded channels for u8).
template <class Tiles>
void run_tiles(const tile_source& s, const tile_output& out, std::size_t pixels, std::size_t first, std::size_t last)
{
    constexpr auto widths = std::make_index_sequence<Tiles::pixels>{};
    for (std::size_t b = first; b < last;) {
        const std::size_t step = std::min(Tiles::blocks, last - b);
        const std::size_t c = b * channel_block;
        for (std::size_t p = 0; p < pixels; p += Tiles::pixels) {
            tile_source part = s;
            part.x += p * s.pixel_stride;
            part.weights += b * s.block_stride;
            tile_output to = out;
            to.multiplier += c;
            to.offset += c;
            if (to.u8)
                to.u8 += p * out.pixel_stride + c;
            else
                to.f32 += p * out.pixel_stride + c;
            to.channels = std::min(step * channel_block, out.channels - c);
            const std::size_t n = std::min(Tiles::pixels, pixels - p);
            if (step == Tiles::blocks)
                detail::tile_of_width<Tiles, Tiles::blocks>(n, part, to, widths);
            else
                detail::tile_of_width<Tiles, 1>(n, part, to, widths);
        }
        b += step;
    }
}

/// Calls f(tiles) with the tiles of int8 kernel k.
template <class F>
void with_tiles(int8_kernel k, F&& f)
{
#if defined(__x86_64__)
    if (k == int8_kernel::avx512_vnni)
        return f(avx512_vnni_tiles{});
    if (k == int8_kernel::avx2)
        return f(avx2_tiles{});
#endif
    f(portable_tiles{});
}

} // namespace vgg::kernels::int8
