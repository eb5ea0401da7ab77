#pragma once
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "vgg/core/layer.hpp"
#include "vgg/train/optimizer.hpp"

namespace vgg {

/// What Adam's weight decay does: Adam adds wd * w to the gradient (L2), AdamW shrinks the weight
/// by lr * wd before the update (decoupled).
enum class weight_decay_kind { l2, decoupled };

// xsimd's AVX-512 square root starts from _mm512_undefined_ps, which GCC 12 reports as uninitialized.
VGG_UNDEFINED_VECTOR_WARNINGS_OFF
namespace detail {

/// torch.optim.Adam and AdamW (amsgrad off), step t of a parameter with gradient g:
///   Adam: g += wd * w;   AdamW: w *= 1 - lr * wd;
///   m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g * g;
///   w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps),
/// the bias corrections in double precision as torch.optim computes them in Python.
template <weight_decay_kind Decay>
class adam_rule : public optimizer_state {
public:
    static constexpr std::string_view kind = Decay == weight_decay_kind::l2 ? "adam" : "adamw";

    explicit adam_rule(float learning_rate, float beta1, float beta2, float eps, float weight_decay)
        : learning_rate(learning_rate), beta1(beta1), beta2(beta2), eps(eps), weight_decay(weight_decay)
    {
        const auto in_unit = [](float b) { return b >= 0.f && b < 1.f; };
        if (!(learning_rate >= 0.f) || !in_unit(beta1) || !in_unit(beta2) || !(eps >= 0.f) || !(weight_decay >= 0.f))
            throw std::invalid_argument(
                std::string(kind) + ": needs lr >= 0, betas in [0, 1), eps >= 0 and weight_decay >= 0, got lr " +
                shortest_text(learning_rate) + ", betas (" + shortest_text(beta1) + ", " + shortest_text(beta2) +
                "), eps " + shortest_text(eps) + ", weight_decay " + shortest_text(weight_decay));
    }

    /// Updates every trainable parameter of `net` from the gradients its last backward wrote.
    template <class Net>
    void step(Net& net)
    {
        for_each_trainable(
            net, 2, [&](const parameter_view& p, parameter_state& s, bool) { return update(p, s); }, kind.data());
    }

    /// The moments' names in torch.optim's state and in checkpoints.
    std::vector<std::string> state_names() const { return {"exp_avg", "exp_avg_sq"}; }

    metadata_list settings() const
    {
        return {{"optimizer", std::string(kind)},
                {"lr", shortest_text(learning_rate)},
                {"betas", shortest_text(beta1) + "," + shortest_text(beta2)},
                {"eps", shortest_text(eps)},
                {"weight_decay", shortest_text(weight_decay)}};
    }

    float learning_rate, beta1, beta2, eps, weight_decay;

private:
    bool update(const parameter_view& p, parameter_state& s)
    {
        const double t = static_cast<double>(s.steps);
        const float step_size = static_cast<float>(double(learning_rate) / (1.0 - std::pow(double(beta1), t)));
        const float correction2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(double(beta2), t)));
        const float shrink = static_cast<float>(1.0 - double(learning_rate) * double(weight_decay));
        const float l2 = Decay == weight_decay_kind::l2 ? weight_decay : 0.f;
        const float keep1 = static_cast<float>(1.0 - double(beta1)), keep2 = static_cast<float>(1.0 - double(beta2));
        float* w = p.value.data();
        const float* g = p.grad.data();
        float* m = s.buffers[0].data();
        float* v = s.buffers[1].data();
        return update_elements(p.value.size(), update_operations, [&]<class T>(std::type_identity<T>, std::size_t i) {
            using lane = lanes<T>;
            using std::sqrt;
            T weight = lane::load(w + i);
            T gradient = lane::load(g + i);
            if constexpr (Decay == weight_decay_kind::l2)
                gradient = gradient + T(l2) * weight;
            else
                weight = weight * T(shrink);
            const T first = lane::load(m + i) * T(beta1) + T(keep1) * gradient;
            const T second = lane::load(v + i) * T(beta2) + T(keep2) * (gradient * gradient);
            lane::store(m + i, first);
            lane::store(v + i, second);
            const T updated = weight - T(step_size) * (first / (sqrt(second) / T(correction2_sqrt) + T(eps)));
            lane::store(w + i, updated);
            return updated;
        });
    }

    /// Operations per parameter of an update, for parallel_ranges' threshold.
    static constexpr std::size_t update_operations = 14;
};

} // namespace detail
VGG_UNDEFINED_VECTOR_WARNINGS_ON

/// torch.optim.Adam(lr, betas=(beta1, beta2), eps, weight_decay): weight decay as L2 added to the gradient.
class adam : public detail::adam_rule<weight_decay_kind::l2> {
public:
    explicit adam(float learning_rate = 1e-3f, float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f,
                  float weight_decay = 0.f)
        : adam_rule(learning_rate, beta1, beta2, eps, weight_decay)
    {}
};

/// torch.optim.AdamW(lr, betas=(beta1, beta2), eps, weight_decay): weight decay decoupled from
/// the gradient (torch's default 0.01).
class adamw : public detail::adam_rule<weight_decay_kind::decoupled> {
public:
    explicit adamw(float learning_rate = 1e-3f, float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f,
                   float weight_decay = 1e-2f)
        : adam_rule(learning_rate, beta1, beta2, eps, weight_decay)
    {}
};

} // namespace vgg
