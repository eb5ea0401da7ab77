#pragma once
#include <atomic>
#include <charconv>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "vgg/core/large_pages.hpp"
#include "vgg/core/layer.hpp"
#include "vgg/detail/parallel.hpp"
#include "vgg/kernels/simd.hpp"

namespace vgg {

/// Metadata entries in order, e.g. {{"lr", "0.05"}, {"momentum", "0.9"}}.
using metadata_list = std::vector<std::pair<std::string, std::string>>;

/// What an optimiser keeps for one parameter between steps, as torch.optim's state[p]: the
/// steps it took and its buffers (e.g. Adam's exp_avg, exp_avg_sq), laid out as the parameter.
struct parameter_state {
    std::size_t steps = 0;
    std::vector<large_page_vector<float>> buffers;
};

/// What fit, the checkpoints and the MPI code need of an optimiser (sgd, adam, adamw):
/// `step(net)` updates every trainable parameter from its gradient, `learning_rate` is what a
/// schedule sets, `state()` holds parameter_state by parameter name with buffers named by
/// `state_names` (in checkpoints "optimizer.<state name>.<parameter name>"), and `settings()`
/// names the hyperparameters kept in checkpoints.
// clang-format off
template <class Optimizer>
concept optimizer = requires(Optimizer& o, const Optimizer& c) {
    { Optimizer::kind } -> std::convertible_to<std::string_view>;
    { c.state_names() } -> std::convertible_to<std::vector<std::string>>;
    { c.settings() } -> std::convertible_to<metadata_list>;
    { o.learning_rate } -> std::convertible_to<float>;
    { o.state() } -> std::same_as<std::map<std::string, parameter_state>&>;
    { o.steps() } -> std::same_as<std::size_t&>;
    { c.non_finite_parameter() } -> std::convertible_to<std::string>;
};
// clang-format on

namespace detail {

/// Loads and stores one value (float) or one register (float_batch), so that an update rule is
/// written once for an optimiser's SIMD loop and its scalar tail.
template <class T>
struct lanes {
    static T load(const float* p) { return T::load_unaligned(p); }
    static void store(float* p, const T& v) { v.store_unaligned(p); }
    static bool finite(const T& v) { return !xsimd::any(xsimd::isnan(v) || xsimd::isinf(v)); }
};
template <>
struct lanes<float> {
    static float load(const float* p) { return *p; }
    static void store(float* p, float v) { *p = v; }
    static bool finite(float v) { return std::isfinite(v); }
};

/// Applies `rule(std::type_identity<T>{}, i)` to elements [0, count) of a parameter, split over
/// threads: T is kernels::float_batch for the registers and float for the tail, and the rule
/// returns the updated weight it stored. Returns whether every updated value is finite, so a
/// training loop can stop at the step that went wrong without another pass over the weights.
/// Each element is updated alone, so the split does not change the results.
template <class Rule>
bool update_elements(std::size_t count, std::size_t operations_per_element, Rule&& rule)
{
    using batch = kernels::float_batch;
    std::atomic<bool> finite{true};
    parallel_ranges(count, operations_per_element, [&](std::size_t, std::size_t, range part) {
        const std::size_t vector_end = part.begin + part.size() - part.size() % batch::size;
        bool part_finite = true;
        for (std::size_t i = part.begin; i < vector_end; i += batch::size)
            part_finite = lanes<batch>::finite(rule(std::type_identity<batch>{}, i)) && part_finite;
        for (std::size_t i = vector_end; i < part.end; ++i)
            part_finite = lanes<float>::finite(rule(std::type_identity<float>{}, i)) && part_finite;
        if (!part_finite)
            finite.store(false, std::memory_order_relaxed);
    });
    return finite.load(std::memory_order_relaxed);
}

/// The state every optimiser keeps: per-parameter state by name, the steps taken and the first
/// parameter the last step left non-finite.
class optimizer_state {
public:
    /// The first parameter the last step left holding a NaN or an infinity, or "" when all are
    /// finite (checked as the update writes them).
    const std::string& non_finite_parameter() const { return non_finite_; }
    /// Per trainable parameter, by name: what a checkpoint must keep to resume exactly.
    std::map<std::string, parameter_state>& state() { return state_; }
    /// Steps taken (calls of step).
    std::size_t& steps() { return steps_; }

protected:
    /// Calls update(p, state, fresh) for every trainable parameter of `net`, its state given
    /// `buffer_count` zeroed buffers the first time (fresh) and counted one more step.
    template <class Net, class Update>
    void for_each_trainable(Net& net, std::size_t buffer_count, Update&& update, const char* who)
    {
        VGG_REQUIRE_NETWORK(Net, "an optimiser's step(net)");
        non_finite_.clear();
        net.visit_parameters([&](const parameter_view& p) {
            if (!p.trainable)
                return;
            auto& s = state_[p.name];
            const bool fresh = s.buffers.size() < buffer_count;
            if (fresh)
                s.buffers.assign(buffer_count, large_page_vector<float>(p.value.size(), 0.f));
            for (const auto& b : s.buffers)
                if (b.size() != p.value.size())
                    throw std::logic_error(std::string(who) + ": the state of parameter " + p.name + " holds " +
                                           std::to_string(b.size()) + " values, the parameter " +
                                           std::to_string(p.value.size()));
            ++s.steps;
            if (!update(p, s, fresh) && non_finite_.empty())
                non_finite_ = p.name;
        });
        ++steps_;
    }

private:
    std::map<std::string, parameter_state> state_;
    std::size_t steps_ = 0;
    std::string non_finite_;
};

} // namespace detail

/// The shortest text that reads back as `value` ("0.05", not "0.050000").
inline std::string shortest_text(float value)
{
    char text[32];
    const auto end = std::to_chars(text, text + sizeof text, value).ptr;
    return std::string(text, end);
}

} // namespace vgg
