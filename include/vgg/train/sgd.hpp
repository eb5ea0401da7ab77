#pragma once
#include <atomic>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "vgg/core/large_pages.hpp"
#include "vgg/core/layer.hpp"
#include "vgg/detail/parallel.hpp"
#include "vgg/kernels/simd.hpp"

namespace vgg {

/// torch.optim.SGD: with weight decay wd and momentum m,
///   g = grad + wd * w;  v = m * v + g (v = g on the first step);  w -= lr * v.
/// With m = 0 and wd = 0 (the seed), plainly w -= lr * grad.
class sgd {
public:
    explicit sgd(float learning_rate, float momentum = 0.f, float weight_decay = 0.f)
        : learning_rate(learning_rate), momentum(momentum), weight_decay(weight_decay)
    {
    }

    /// Updates every parameter of `net` from the gradients its last backward wrote.
    template <class Net>
    void step(Net& net)
    {
        static_assert(network<Net>, "sgd::step(net) needs a network such as Sequential or VGG: forward(x), backward(dy) "
                                    "and visit_parameters(visitor).");
        std::size_t index = 0;
        non_finite_.clear();
        net.visit_parameters([&](const parameter_view& p) {
            if (!p.trainable)
                return;
            if (momentum != 0.f) {
                if (velocity_.size() <= index)
                    velocity_.emplace_back(p.value.size(), 0.f);
                if (velocity_[index].size() != p.value.size())
                    throw std::logic_error("sgd: parameter " + p.name + " changed size between steps");
            }
            if (!update(p, index) && non_finite_.empty())
                non_finite_ = p.name;
            ++index;
        });
        ++steps_;
    }

    /// The first parameter the last step left holding a NaN or an infinity, or "" when all are
    /// finite: checked as the update writes them, so a training loop can stop at the step that
    /// went wrong without another pass over the weights.
    const std::string& non_finite_parameter() const { return non_finite_; }

    /// Momentum buffers, one per trainable parameter in visiting order (empty without momentum), and
    /// the number of steps taken: what a checkpoint must keep to resume exactly.
    std::vector<large_page_vector<float>>& velocity() { return velocity_; }
    std::size_t& steps() { return steps_; }

    float learning_rate, momentum, weight_decay;

private:
    // Split over threads: the update reads and writes memory at what one core can move (VGG-16's
    // 138 million parameters: 2.2 GB on one core of the Xeon). Each element is updated alone, so
    // the split does not change the results. Returns whether every updated value is finite.
    bool update(const parameter_view& p, std::size_t index)
    {
        using batch = kernels::float_batch;
        float* w = p.value.data();
        const float* g = p.grad.data();
        float* v = momentum != 0.f ? velocity_[index].data() : nullptr;
        const bool first = steps_ == 0;
        std::atomic<bool> finite{true};
        vgg::detail::parallel_ranges(p.value.size(), update_operations, [&](std::size_t, std::size_t, vgg::detail::range part) {
            const batch lr(learning_rate), wd(weight_decay), m(first ? 0.f : momentum);
            const std::size_t vector_end = part.begin + part.size() - part.size() % batch::size;
            auto non_finite = batch(0.f) != batch(0.f);
            for (std::size_t i = part.begin; i < vector_end; i += batch::size) {
                const batch weight = batch::load_unaligned(w + i);
                batch d = batch::load_unaligned(g + i) + wd * weight;
                if (v) {
                    d = m * batch::load_unaligned(v + i) + d;
                    d.store_unaligned(v + i);
                }
                const batch updated = weight - lr * d;
                updated.store_unaligned(w + i);
                non_finite = non_finite || xsimd::isnan(updated) || xsimd::isinf(updated);
            }
            bool tail_finite = true;
            for (std::size_t i = vector_end; i < part.end; ++i) {
                float d = g[i] + weight_decay * w[i];
                if (v)
                    d = v[i] = (first ? 0.f : momentum) * v[i] + d;
                w[i] -= learning_rate * d;
                tail_finite = tail_finite && std::isfinite(w[i]);
            }
            if (xsimd::any(non_finite) || !tail_finite)
                finite.store(false, std::memory_order_relaxed);
        });
        return finite.load(std::memory_order_relaxed);
    }

    /// Operations per parameter of an update, for parallel_ranges' threshold.
    static constexpr std::size_t update_operations = 4;

    std::vector<large_page_vector<float>> velocity_;
    std::size_t steps_ = 0;
    std::string non_finite_;
};

} // namespace vgg
