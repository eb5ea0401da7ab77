#pragma once
#include <cstddef>
#include <stdexcept>
#include <vector>

#include "vgg/core/layer.hpp"
#include "vgg/core/tensor.hpp"

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
        net.visit_parameters([&](const parameter_view& p) {
            if (!p.trainable)
                return;
            if (momentum != 0.f) {
                if (velocity_.size() <= index)
                    velocity_.emplace_back(p.value.size(), 0.f);
                if (velocity_[index].size() != p.value.size())
                    throw std::logic_error("sgd: parameter " + p.name + " changed size between steps");
            }
            update(p, index);
            ++index;
        });
        ++steps_;
    }

    /// Momentum buffers, one per trainable parameter in visiting order (empty without momentum), and
    /// the number of steps taken: what a checkpoint must keep to resume exactly.
    std::vector<aligned_vector<float>>& velocity() { return velocity_; }
    std::size_t& steps() { return steps_; }

    float learning_rate, momentum, weight_decay;

private:
    void update(const parameter_view& p, std::size_t index)
    {
        float* w = p.value.data();
        const float* g = p.grad.data();
        const std::size_t n = p.value.size();
        if (momentum == 0.f) {
            for (std::size_t i = 0; i < n; ++i)
                w[i] -= learning_rate * (g[i] + weight_decay * w[i]);
            return;
        }
        float* v = velocity_[index].data();
        const bool first = steps_ == 0;
        for (std::size_t i = 0; i < n; ++i) {
            const float d = g[i] + weight_decay * w[i];
            v[i] = first ? d : momentum * v[i] + d;
            w[i] -= learning_rate * v[i];
        }
    }

    std::vector<aligned_vector<float>> velocity_;
    std::size_t steps_ = 0;
};

} // namespace vgg
