#pragma once
#include <cstddef>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "vgg/core/threads.hpp"

namespace vgg::detail {

/// The half-open range [begin, end) of `count` items that `part` of `parts` owns; ranges are
/// contiguous and differ in length by at most one.
struct range {
    std::size_t begin, end;
    std::size_t size() const { return end - begin; }
};
inline range partition(std::size_t count, std::size_t parts, std::size_t part)
{
    const std::size_t base = count / parts, extra = count % parts;
    const std::size_t begin = part * base + (part < extra ? part : extra);
    return {begin, begin + base + (part < extra ? 1 : 0)};
}

/// Work (arithmetic operations) below which a parallel region costs more than it saves: waking
/// the other threads takes microseconds, and where the cores are shared with another process (two
/// test programs, two trainers) a thread waiting at the region's end spins through its time slice.
inline constexpr std::size_t parallel_min_operations = std::size_t{1} << 20;

/// Runs body(thread, threads, range) on every thread of one parallel region, each thread owning
/// a fixed contiguous share of `count` items of about `operations_per_item` operations each; work
/// under parallel_min_operations runs on the calling thread alone. The split depends only on the
/// thread count, so a given thread count always gives the same summation order.
template <class Body>
void parallel_ranges(std::size_t count, [[maybe_unused]] std::size_t operations_per_item, Body&& body)
{
#ifdef _OPENMP
#pragma omp parallel if (count > 1 && count * operations_per_item >= parallel_min_operations)
    {
        const auto threads = static_cast<std::size_t>(omp_get_num_threads());
        const auto thread = static_cast<std::size_t>(omp_get_thread_num());
        body(thread, threads, partition(count, threads, thread));
    }
#else
    body(std::size_t{0}, std::size_t{1}, range{0, count});
#endif
}

/// Runs body(range) over pieces of `piece` items of `count` (the last may be shorter) on the
/// threads of one parallel region, each thread taking the next piece when it finishes one: for
/// work limited by the memory's bandwidth, which two cores do not share evenly (a fixed half each
/// leaves one thread waiting for the other). Only for work whose results do not depend on the thread that does a piece.
/// Work under parallel_min_operations runs on the calling thread alone.
template <class Body>
void parallel_pieces(std::size_t count, std::size_t piece, [[maybe_unused]] std::size_t operations_per_item,
                     Body&& body)
{
    const std::size_t pieces = (count + piece - 1) / piece;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) if (pieces > 1 && count * operations_per_item >= parallel_min_operations)
#endif
    for (std::size_t p = 0; p < pieces; ++p)
        body(range{p * piece, p + 1 < pieces ? (p + 1) * piece : count});
}

} // namespace vgg::detail
