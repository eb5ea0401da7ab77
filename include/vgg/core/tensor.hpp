#pragma once
#include <cassert>
#include <cstddef>
#include <span>
#include <vector>

#include "vgg/detail/xsimd.hpp"

#include "vgg/core/shape.hpp"

namespace vgg {

/// Alignment of every tensor buffer: one AVX-512 register.
inline constexpr std::size_t tensor_alignment = 64;

template <class T>
using aligned_vector = std::vector<T, xsimd::aligned_allocator<T, tensor_alignment>>;

namespace detail {

/// Grows a scratch buffer to at least `size` elements and returns them. It never shrinks, so a
/// buffer reused for many sizes allocates only for the largest. New elements are zero, so padding
/// that flows through computations but is never read always holds finite values.
template <class T>
T* reserve(aligned_vector<T>& buffer, std::size_t size)
{
    if (buffer.size() < size)
        buffer.resize(size, T{});
    return buffer.data();
}

} // namespace detail

/// A batch of samples of compile-time shape `Shape`, stored contiguously (NCHW for images).
/// The batch size is a runtime value; resizing keeps the allocation when it shrinks.
template <class Shape>
class tensor {
public:
    using shape_type = Shape;
    static constexpr std::size_t sample_size = Shape::size;

    tensor() = default;
    explicit tensor(std::size_t batch) { resize(batch); }

    void resize(std::size_t batch)
    {
        batch_ = batch;
        values_.resize(batch * sample_size);
    }

    std::size_t batch() const { return batch_; }
    std::size_t size() const { return values_.size(); }

    float* data() { return values_.data(); }
    const float* data() const { return values_.data(); }
    std::span<float> values() { return values_; }
    std::span<const float> values() const { return values_; }

    float* sample(std::size_t n) { return values_.data() + n * sample_size; }
    const float* sample(std::size_t n) const { return values_.data() + n * sample_size; }

    /// Element access by batch index and per-sample coordinates, e.g. t(n, c, h, w).
    template <class... Index>
    float& operator()(std::size_t n, Index... index)
    {
        return values_[offset(n, index...)];
    }
    template <class... Index>
    float operator()(std::size_t n, Index... index) const
    {
        return values_[offset(n, index...)];
    }

private:
    template <class... Index>
    static std::size_t offset(std::size_t n, Index... index)
    {
        static_assert(sizeof...(Index) == Shape::rank,
                      "A tensor is indexed by the batch index and one index per dimension.");
        std::size_t flat = n;
        std::size_t axis = 0;
        ((flat = flat * Shape::dims[axis++] + static_cast<std::size_t>(index)), ...);
        return flat;
    }

    std::size_t batch_ = 0;
    aligned_vector<float> values_;
};

} // namespace vgg
