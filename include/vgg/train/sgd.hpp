#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "vgg/core/layer.hpp"
#include "vgg/train/optimizer.hpp"

namespace vgg {

/// torch.optim.SGD: with weight decay wd and momentum m,
///   g = grad + wd * w;  v = m * v + g (v = g on the first step);  w -= lr * v,
/// or with Nesterov momentum w -= lr * (g + m * v). With m = 0 and wd = 0 (the seed), plainly
/// w -= lr * grad.
class sgd : public detail::optimizer_state {
public:
    static constexpr std::string_view kind = "sgd";

    explicit sgd(float learning_rate, float momentum = 0.f, float weight_decay = 0.f, bool nesterov = false)
        : learning_rate(learning_rate), momentum(momentum), weight_decay(weight_decay), nesterov(nesterov)
    {}

    /// Updates every trainable parameter of `net` from the gradients its last backward wrote.
    template <class Net>
    void step(Net& net)
    {
        VGG_REQUIRE_NETWORK(Net, "sgd::step(net)");
        for_each_trainable(
            net, momentum != 0.f ? 1 : 0,
            [&](const parameter_view& p, parameter_state& s, bool fresh) {
                return update(p, s.buffers.empty() ? nullptr : s.buffers[0].data(), fresh);
            },
            "sgd");
    }

    /// The momentum buffer's name in torch.optim's state and in checkpoints (none without momentum).
    std::vector<std::string> state_names() const { return {"momentum_buffer"}; }

    /// The hyperparameters, as checkpoints keep them (Nesterov only when on).
    metadata_list settings() const
    {
        metadata_list list{{"lr", shortest_text(learning_rate)},
                           {"momentum", shortest_text(momentum)},
                           {"weight_decay", shortest_text(weight_decay)}};
        if (nesterov)
            list.emplace_back("nesterov", "1");
        return list;
    }

    float learning_rate, momentum, weight_decay;
    bool nesterov;

private:
    bool update(const parameter_view& p, float* v, bool first)
    {
        float* w = p.value.data();
        const float* g = p.grad.data();
        const float m = first ? 0.f : momentum;
        return detail::update_elements(p.value.size(), update_operations,
                                       [&]<class T>(std::type_identity<T>, std::size_t i) {
                                           using lane = detail::lanes<T>;
                                           const T weight = lane::load(w + i);
                                           T d = lane::load(g + i) + T(weight_decay) * weight;
                                           if (v) {
                                               const T velocity = T(m) * lane::load(v + i) + d;
                                               lane::store(v + i, velocity);
                                               d = nesterov ? d + T(momentum) * velocity : velocity;
                                           }
                                           const T updated = weight - T(learning_rate) * d;
                                           lane::store(w + i, updated);
                                           return updated;
                                       });
    }

    /// Operations per parameter of an update, for parallel_ranges' threshold.
    static constexpr std::size_t update_operations = 4;
};

} // namespace vgg
