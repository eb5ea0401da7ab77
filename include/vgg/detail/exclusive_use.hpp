#pragma once
#include <atomic>
#include <stdexcept>
#include <string>

namespace vgg::detail {

/// Refuses a second forward or backward on one network while one runs (a call from another
/// thread): a network keeps its activations and gradients in itself, so two calls at once would
/// overwrite each other's. Copies start free.
class exclusive_use {
public:
    exclusive_use() = default;
    exclusive_use(const exclusive_use&) {}
    exclusive_use& operator=(const exclusive_use&) { return *this; }

    /// Holds the network for one call, named as errors print it ("Sequential::forward").
    class hold {
    public:
        hold(exclusive_use& use, const char* call) : use_(use)
        {
            if (use_.busy_.exchange(true, std::memory_order_acquire))
                throw std::logic_error(
                    std::string(call) +
                    ": another forward or backward of this network is running (on another thread); a "
                    "network is not thread-safe: give each thread its own copy");
        }
        ~hold() { use_.busy_.store(false, std::memory_order_release); }
        hold(const hold&) = delete;
        hold& operator=(const hold&) = delete;

    private:
        exclusive_use& use_;
    };

private:
    std::atomic<bool> busy_{false};
};

} // namespace vgg::detail
