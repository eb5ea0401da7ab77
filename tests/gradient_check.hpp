#pragma once
// A finite-difference gradient checker in the manner of dlib's test_layer: central differences
// at several step sizes, a combined relative/absolute tolerance, and a report that names the
// element and both values.
#include <cmath>
#include <cstddef>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <vgg/vgg.hpp>

namespace vgg::testing {

struct gradient_report {
    bool ok = true;
    std::string message;
};

/// `loss()` evaluates a scalar function of `values`; `analytic` holds its gradient. Each element
/// is tried with steps 1e-4, 1e-3 and 1e-2, and with central, forward and backward differences:
/// ReLU and max-pool make the loss piecewise smooth, and when a kink lies on one side of the
/// point, the difference taken on the other side is still exact. An element passes when
/// |numeric - analytic| <= abs_tol or <= rel_tol * max(|numeric|, |analytic|).
inline gradient_report check_gradient(const std::string& what, std::span<float> values, std::span<const float> analytic,
                                      const std::function<double()>& loss, double rel_tol = 2e-2, double abs_tol = 2e-3)
{
    gradient_report report;
    const auto agrees = [&](double numeric, double expected) {
        const double error = std::abs(numeric - expected);
        return error <= abs_tol || error <= rel_tol * std::max(std::abs(numeric), std::abs(expected));
    };
    for (std::size_t i = 0; i < values.size(); ++i) {
        const float saved = values[i];
        const double centre = loss();
        double reported = NAN; // the central difference at the smallest step
        bool ok = false;
        for (double step : {1e-4, 1e-3, 1e-2}) {
            values[i] = static_cast<float>(saved + step);
            const double plus = loss();
            values[i] = static_cast<float>(saved - step);
            const double minus = loss();
            values[i] = saved;
            const double central = (plus - minus) / (2 * step);
            if (std::isnan(reported))
                reported = central;
            for (double numeric : {central, (plus - centre) / step, (centre - minus) / step})
                ok = ok || agrees(numeric, analytic[i]);
            if (ok)
                break;
        }
        if (!ok) {
            std::ostringstream out;
            out << what << "[" << i << "]: numeric " << reported << ", analytic " << analytic[i] << "\n";
            report.ok = false;
            report.message += out.str();
        }
    }
    return report;
}

/// Sets the OpenMP thread count for its lifetime, for results that depend on it.
struct scoped_threads {
    int before = vgg::max_threads();
    explicit scoped_threads(int threads) { omp_set_num_threads(threads); }
    ~scoped_threads() { omp_set_num_threads(before); }
};

/// Fills a tensor with uniform values in [low, high).
template <class T>
void fill_uniform(T&& values, rng& random, float low = -1.f, float high = 1.f)
{
    for (auto& v : values)
        v = random.uniform(low, high);
}

/// Checks a concrete layer: input gradient and every parameter gradient of
/// loss = sum(forward(x) * weights), for a batch of `batch` random inputs.
template <class Layer>
gradient_report check_layer(Layer& layer, std::size_t batch, std::uint64_t seed = 1,
                            run_context context = {mode::train, 42})
{
    using in_t = tensor<typename Layer::input_shape>;
    using out_t = tensor<typename Layer::output_shape>;
    rng random(seed);
    if constexpr (Layer::parameter_count > 0)
        layer.initialize(weight_init::pytorch_default, random);
    in_t x(batch), dx(batch);
    out_t y, dy(batch);
    fill_uniform(x.values(), random);
    fill_uniform(dy.values(), random);
    auto loss = [&] {
        layer.forward(x, y, context);
        double sum = 0;
        for (std::size_t i = 0; i < y.size(); ++i)
            sum += double(y.data()[i]) * dy.data()[i];
        return sum;
    };
    loss();
    layer.backward(x, y, dy, &dx);
    gradient_report report = check_gradient("input", x.values(), dx.values(), loss);
    if constexpr (Layer::parameter_count > 0) {
        std::vector<std::vector<float>> grads;
        layer.visit_parameters("", [&](const parameter_view& p) { grads.emplace_back(p.grad.begin(), p.grad.end()); });
        std::size_t k = 0;
        layer.visit_parameters("", [&](const parameter_view& p) {
            if (!p.trainable) // a buffer (running statistics): no gradient to check
                return void(++k);
            auto part = check_gradient(p.name, p.value, grads[k++], loss);
            report.ok = report.ok && part.ok;
            report.message += part.message;
        });
    }
    return report;
}

} // namespace vgg::testing
