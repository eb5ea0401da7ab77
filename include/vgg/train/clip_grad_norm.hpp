#pragma once
#include <cmath>
#include <stdexcept>
#include <string>

#include <Eigen/Core>

#include "vgg/core/layer.hpp"

namespace vgg {

/// torch.nn.utils.clip_grad_norm_(parameters, max_norm): the 2-norm of the gradients of all
/// trainable parameters together; when it exceeds max_norm, every gradient is scaled by
/// max_norm / (norm + 1e-6). Returns the norm before clipping (NaN or infinite when a gradient is).
template <class Net>
double clip_grad_norm(Net& net, float max_norm)
{
    VGG_REQUIRE_NETWORK(Net, "clip_grad_norm(net, max_norm)");
    if (!(max_norm > 0.f))
        throw std::invalid_argument("clip_grad_norm: max_norm must be positive, got " + std::to_string(max_norm));
    const auto gradient = [](const parameter_view& p) {
        return Eigen::Map<Eigen::VectorXf>(p.grad.data(), static_cast<Eigen::Index>(p.grad.size()));
    };
    double squares = 0;
    net.visit_parameters([&](const parameter_view& p) {
        if (p.trainable)
            squares += double(gradient(p).squaredNorm());
    });
    const double norm = std::sqrt(squares);
    const double scale = double(max_norm) / (norm + 1e-6);
    if (scale < 1.0)
        net.visit_parameters([&](const parameter_view& p) {
            if (p.trainable)
                gradient(p) *= static_cast<float>(scale);
        });
    return norm;
}

} // namespace vgg
