#pragma once
#include <cstdint>

namespace vgg {

/// SplitMix64 finaliser: a strong 64-bit mix, used both to step the generator and to derive
/// independent streams from (seed, counter) pairs so that results do not depend on thread count.
constexpr std::uint64_t mix64(std::uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

constexpr std::uint64_t mix64(std::uint64_t a, std::uint64_t b) { return mix64(a ^ mix64(b)); }

/// Uniform float in [0, 1) from the top 24 bits of a 64-bit value.
constexpr float unit_float(std::uint64_t bits) { return static_cast<float>(bits >> 40) * 0x1.0p-24f; }

/// A small seeded generator (SplitMix64). Its whole state is one integer, so checkpoints can
/// store it, and its output is the same on every platform, unlike std:: distributions.
class rng {
public:
    explicit rng(std::uint64_t seed = 0) : state_(seed) {}

    std::uint64_t next() { return mix64(state_++); }
    /// Uniform in [0, 1).
    float uniform() { return unit_float(next()); }
    /// Uniform in [low, high).
    float uniform(float low, float high) { return low + (high - low) * uniform(); }
    /// Uniform integer in [0, bound), bound > 0 (Lemire's multiply-shift, bias below 2^-32).
    std::uint64_t below(std::uint64_t bound)
    {
        return static_cast<std::uint64_t>((static_cast<unsigned __int128>(next()) * bound) >> 64);
    }

    std::uint64_t state() const { return state_; }
    void set_state(std::uint64_t state) { state_ = state; }

private:
    std::uint64_t state_;
};

} // namespace vgg
