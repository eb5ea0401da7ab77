#pragma once
#include <concepts>
#include <cstddef>
#include <span>
#include <string>

#include "vgg/core/tensor.hpp"

namespace vgg {

/// The processes that train together: this one alone. vgg/distributed/mpi.hpp's mpi_team is
/// the other kind; fit only needs what this class has.
struct single_process {
    std::size_t rank() const { return 0; }
    std::size_t size() const { return 1; }
    /// Sums `values` over the processes.
    void sum(std::span<double>) const {}
    /// Backward of the local share (`share` of the global batch) that leaves every process with
    /// the whole batch's gradients.
    template <class Net>
    void backward(Net& net, const tensor<typename Net::output_shape>& grad, float /*share*/)
    {
        net.backward(grad);
    }
    /// A line for the log after each epoch ("" for none).
    std::string epoch_report(std::size_t /*steps*/) const { return {}; }
};

/// What fit and evaluate_accuracy ask of the processes that train together (single_process,
/// mpi_team): their number, this one's rank, a sum over them, a line for the log.
// clang-format off
template <class Team>
concept team = requires(const Team& t, std::span<double> values, std::size_t steps) {
    { t.rank() } -> std::convertible_to<std::size_t>;
    { t.size() } -> std::convertible_to<std::size_t>;
    t.sum(values);
    { t.epoch_report(steps) } -> std::convertible_to<std::string>;
};
// clang-format on
static_assert(team<single_process>);

} // namespace vgg
