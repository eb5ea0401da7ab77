#pragma once
#include <cstddef>
#include <cstdlib>
#include <new>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "vgg/core/tensor.hpp"

namespace vgg {
namespace detail {

/// x86-64's large page, 2 MiB: the size from which large_page_allocator asks for them.
inline constexpr std::size_t large_page_bytes = std::size_t{2} << 20;

/// An allocator for buffers read from memory end to end in every pass, as the fully connected
/// layers' weights are: one from large_page_bytes on starts on a large page and asks Linux to back
/// it by transparent huge pages (a hint; where they are off it gets 4 KB pages), so streaming it
/// takes a TLB entry per 2 MiB instead of per 4 KB. Smaller buffers are aligned as tensors are.
template <class T>
struct large_page_allocator {
    using value_type = T;

    large_page_allocator() = default;
    template <class U>
    large_page_allocator(const large_page_allocator<U>&) noexcept
    {}

    T* allocate(std::size_t count)
    {
        if (count > std::size_t(-1) / sizeof(T) - large_page_bytes)
            throw std::bad_array_new_length();
        const std::size_t bytes = count * sizeof(T);
        const std::size_t alignment = bytes >= large_page_bytes ? large_page_bytes : tensor_alignment;
        const std::size_t size = (bytes + alignment - 1) / alignment * alignment; // aligned_alloc wants whole units
        void* memory = std::aligned_alloc(alignment, size);
        if (!memory)
            throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
        if (alignment == large_page_bytes)
            madvise(memory, size, MADV_HUGEPAGE);
#endif
        return static_cast<T*>(memory);
    }

    void deallocate(T* memory, std::size_t) noexcept { std::free(memory); }

    template <class U>
    bool operator==(const large_page_allocator<U>&) const noexcept
    {
        return true;
    }
};

} // namespace detail

/// A vector on large pages where it is large (detail::large_page_allocator): the storage of
/// learnable tensors, their gradients and momentum.
template <class T>
using large_page_vector = std::vector<T, detail::large_page_allocator<T>>;

} // namespace vgg
